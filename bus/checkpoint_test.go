package bus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
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

// TestNodeCheckpoints: each node's checkpoints have a subject of their own
// in the stream, beside the single node's: the last of each is read back,
// none hiding another's, also on a stream created before nodes had
// subjects.
func TestNodeCheckpoints(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	ctx := context.Background()
	// The stream as an earlier version created it: the one subject.
	if _, err := l.js.CreateStream(ctx, jetstream.StreamConfig{Name: CheckpointStream, Subjects: []string{checkpointSubject},
		Storage: jetstream.FileStorage, MaxMsgs: checkpointKeep}); err != nil {
		t.Fatal(err)
	}
	if err := l.PutCheckpoint(ctx, []byte(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	if b, err := l.LastNodeCheckpoint(ctx, "node-a"); err != nil || b != nil {
		t.Fatalf("LastNodeCheckpoint of node-a before any = %q, %v; want nil", b, err)
	}
	for _, p := range []struct{ node, c string }{{"node-a", `{"node":"node-a","seq":5}`}, {"node-b", `{"node":"node-b","seq":3}`}, {"node-a", `{"node":"node-a","seq":6}`}} {
		if err := l.PutNodeCheckpoint(ctx, p.node, []byte(p.c)); err != nil {
			t.Fatal(err)
		}
	}
	for node, want := range map[string]string{"": `{"seq":1}`, "node-a": `{"node":"node-a","seq":6}`, "node-b": `{"node":"node-b","seq":3}`} {
		if b, err := l.LastNodeCheckpoint(ctx, node); err != nil || string(b) != want {
			t.Errorf("LastNodeCheckpoint(%q) = %q, %v; want %s", node, b, err, want)
		}
	}
	if b, err := l.LastCheckpoint(ctx); err != nil || string(b) != `{"seq":1}` {
		t.Errorf("LastCheckpoint = %q, %v; want the single node's", b, err)
	}
}
