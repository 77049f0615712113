package mqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRefusedUserNamesRedacted: the user name of a refused CONNECT (which
// may be a token or password sent in the wrong field) is neither logged
// nor audited as sent; only its first characters and a keyed hash are.
func TestRefusedUserNamesRedacted(t *testing.T) {
	var logs lockedBuffer
	names, err := auth.NewNameRedactor(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "", func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.AttemptedNames = names
	})
	id, tok := e.device()
	const typed = "vgd_MARKERpasted-token-into-the-name"
	for _, c := range []struct{ user, pwd string }{{typed, tok}, {id, tok + "x"}} {
		if cl, err := e.dial(Version5, c.user, c.pwd); err == nil {
			cl.Close()
			t.Fatalf("CONNECT as %q accepted", c.user)
		}
	}
	denied := e.auditor.find(vigil.AuditSignIn, vigil.AuditDenied, "")
	if len(denied) != 2 {
		t.Fatalf("%d refused CONNECTs audited, want 2", len(denied))
	}
	for _, a := range denied {
		if strings.Contains(a.ActorName, "MARKER") || strings.Contains(a.ActorName, id[2:]) {
			t.Errorf("audit entry names %q: the user name as sent", a.ActorName)
		}
	}
	if denied[0].ActorName != names.Redact(typed) || denied[1].ActorName != names.Redact(id) || denied[1].Actor != id {
		t.Errorf("audited names %q, %q (actor %q), want %q, %q (actor %q)",
			denied[0].ActorName, denied[1].ActorName, denied[1].Actor, names.Redact(typed), names.Redact(id), id)
	}
	if out := logs.String(); strings.Contains(out, "MARKER") || !strings.Contains(out, "mqtt audit") {
		t.Errorf("log holds the user name as sent (or no refusal at all):\n%s", out)
	}
}
