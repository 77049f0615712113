package http

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// scriptedAuditor is an AuditStarter whose waits answer err, and which
// counts what it was asked.
type scriptedAuditor struct {
	err     error
	mu      sync.Mutex
	started int
	waited  int
}

func (a *scriptedAuditor) Record(ctx context.Context, e vigil.AuditEntry) error {
	return a.StartRecord(ctx, e)()
}

func (a *scriptedAuditor) StartRecord(context.Context, vigil.AuditEntry) func() error {
	a.mu.Lock()
	a.started++
	a.mu.Unlock()
	return func() error {
		a.mu.Lock()
		a.waited++
		a.mu.Unlock()
		return a.err
	}
}

// TestAuditGate: a response is released only once its audit entry is
// durable; if the entry fails, nothing the handler wrote reaches the client
// (also when it wrote more than the gate holds, or streams), and the
// request answers 503.
func TestAuditGate(t *testing.T) {
	e := newEnv(t)
	p := e.patient("P1")
	pat := e.user("pat", vigil.RolePatient, p)
	tok := e.token(pat, vigil.TokenSession)
	// 1,000 readings: some 150 KB of JSON, more than the gate holds back.
	e.heartRates(p, 1000)
	unavailable := vigil.Errorf(vigil.EUNAVAILABLE, "disk full")
	for _, tc := range []struct {
		name   string
		path   string
		err    error
		status int
		check  func(t *testing.T, body string)
	}{
		{"small response, entry durable", "/api/v1/patients/" + p, nil, 200, func(t *testing.T, body string) {
			if !strings.Contains(body, "Patient P1") {
				t.Errorf("body %s, want the patient", body)
			}
		}},
		{"large response, entry durable", "/api/v1/patients/" + p + "/readings?limit=1000", nil, 200, func(t *testing.T, body string) {
			var out struct {
				Readings []readingOut `json:"readings"`
			}
			if len(body) <= gate.HoldBytes || json.Unmarshal([]byte(body), &out) != nil || len(out.Readings) != 1000 {
				t.Errorf("%d bytes, %d readings; want all 1000 in more than %d bytes", len(body), len(out.Readings), gate.HoldBytes)
			}
		}},
		{"small response, entry failed", "/api/v1/patients/" + p, unavailable, 503, func(t *testing.T, body string) {
			if strings.Contains(body, "Patient P1") || !strings.Contains(body, "audit log unavailable") {
				t.Errorf("body %s, want the error and no patient data", body)
			}
		}},
		{"large response, entry failed", "/api/v1/patients/" + p + "/readings?limit=1000", unavailable, 503, func(t *testing.T, body string) {
			if strings.Contains(body, "8867-4") || !strings.Contains(body, "audit log unavailable") {
				t.Errorf("body %.200s, want the error and no readings", body)
			}
		}},
		{"stream, entry failed", "/api/v1/events", unavailable, 503, func(t *testing.T, body string) {
			if strings.Contains(body, "retry:") || !strings.Contains(body, "audit log unavailable") {
				t.Errorf("body %s, want the error and no stream", body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &scriptedAuditor{err: tc.err}
			e.api.Auditor = a
			st, body := e.request("GET", tc.path, tok, "")
			if st != tc.status {
				t.Fatalf("status %d, want %d: %.300s", st, tc.status, body)
			}
			tc.check(t, body)
			if a.started != 1 || a.waited < 1 {
				t.Errorf("entries started %d, waited for %d times; want 1 started and waited for", a.started, a.waited)
			}
		})
	}
}

// TestAuditGateHoldsUntilDurable: the handler runs while its entry is being
// made durable, and its response reaches the client only after.
func TestAuditGateHoldsUntilDurable(t *testing.T) {
	e := newEnv(t)
	p := e.patient("P1")
	pat := e.user("pat", vigil.RolePatient, p)
	tok := e.token(pat, vigil.TokenSession)
	durable := make(chan struct{})
	waiting := make(chan struct{})
	e.api.Auditor = &blockingAuditor{waiting: waiting, durable: durable}
	type answer struct {
		status int
		body   string
	}
	got := make(chan answer, 1)
	go func() {
		st, body := e.request("GET", "/api/v1/patients/"+p, tok, "")
		got <- answer{st, body}
	}()
	// The handler has run and written its response: the gate now waits
	// for the entry, and the client has nothing yet.
	<-waiting
	select {
	case a := <-got:
		t.Fatalf("response %d %s before the entry was durable", a.status, a.body)
	default:
	}
	close(durable)
	if a := <-got; a.status != 200 || !strings.Contains(a.body, "Patient P1") {
		t.Fatalf("after the entry was durable: %d %s", a.status, a.body)
	}
}

// blockingAuditor's waits block until durable is closed, saying so on
// waiting first.
type blockingAuditor struct {
	waiting, durable chan struct{}
	once             sync.Once
}

func (a *blockingAuditor) Record(ctx context.Context, e vigil.AuditEntry) error {
	return a.StartRecord(ctx, e)()
}

func (a *blockingAuditor) StartRecord(context.Context, vigil.AuditEntry) func() error {
	return func() error {
		a.once.Do(func() { close(a.waiting) })
		<-a.durable
		return nil
	}
}
