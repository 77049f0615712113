package bus

import (
	"context"
	"testing"
)

// TestCheckpoints: audit checkpoints are stored in a stream of their own
// and the last one is read back, also after a restart of the embedded
// server; the log's own stream is not touched.
func TestCheckpoints(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	ctx := context.Background()
	if b, err := l.LastCheckpoint(ctx); err != nil || b != nil {
		t.Fatalf("LastCheckpoint of none = %q, %v; want nil", b, err)
	}
	for _, c := range []string{`{"seq":1}`, `{"seq":2}`} {
		if err := l.PutCheckpoint(ctx, []byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, Options{Dir: dir})
	if b, err := l.LastCheckpoint(ctx); err != nil || string(b) != `{"seq":2}` {
		t.Fatalf("LastCheckpoint after a restart = %q, %v; want the second", b, err)
	}
	if info, err := l.js.Stream(ctx, l.opts.Stream); err != nil || info.CachedInfo().State.Msgs != 0 {
		t.Errorf("the log's stream holds messages after checkpoints: %v", err)
	}
}
