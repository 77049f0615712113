package gate

import (
	"context"
	"net/http"
	"sync"

	"github.com/vigil-health/vigil"
)

// startAudit starts recording the success entry of an allowed request and
// returns the function that waits for it: nil once the entry is durable,
// or the error to answer instead (see auditFailed). The write overlaps the
// handler's work; auditGate holds the response back until it is done.
func (g *Gate) startAudit(ctx context.Context, r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject string) (wait func() error) {
	e := g.auditEntry(r, p, action, subject, vigil.AuditSuccess, "")
	if st, ok := g.Auditor.(vigil.AuditStarter); ok {
		return st.StartRecord(ctx, e)
	}
	pending := make(chan error, 1)
	go func() { pending <- g.Auditor.Record(ctx, e) }()
	var err error
	got := false
	return func() error {
		if !got {
			err, got = <-pending, true
		}
		return err
	}
}

// auditGate holds a response back until the request's audit entry is
// durable. The handler's status and up to HoldBytes bytes of its body are
// held in memory, so that the handler runs to its end (or until it has
// written that much, or flushes) while the entry is written; then the gate
// waits for the entry and releases what it held. If the entry could not be
// written, what the handler wrote is dropped and the request answers 503
// instead. Handlers that stream must write nothing before they are ready
// to be refused. Not safe for concurrent use, as http.ResponseWriter.
type auditGate struct {
	http.ResponseWriter              // the statusWriter under the gate
	wait                func() error // waits for the entry
	fail                func(error)  // writes the error response
	settled             bool         // the entry's outcome is known
	err                 error        // its error, once settled
	status              int          // held back: the handler's status
	held                *[]byte      // held back: the start of its body (from heldBuffers)
}

// HoldBytes is the most body bytes an auditGate holds back; a handler that
// writes more waits for the audit entry at that point.
const HoldBytes = 64 << 10

// release waits for the entry, then writes what the gate held back (or the
// error response if the entry failed). It returns the entry's error, or
// the error writing what was held.
func (g *auditGate) release() error {
	if g.settled {
		return g.err
	}
	g.settled = true
	held := g.held
	g.held = nil
	if held != nil {
		defer func() {
			*held = (*held)[:0]
			heldBuffers.Put(held)
		}()
	}
	if g.err = g.wait(); g.err != nil {
		g.fail(g.err)
		return g.err
	}
	if g.status != 0 {
		g.ResponseWriter.WriteHeader(g.status)
	}
	if held != nil && len(*held) > 0 {
		if _, err := g.ResponseWriter.Write(*held); err != nil {
			return err
		}
	}
	return nil
}

// heldBuffers are the buffers auditGates hold bodies in, reused: a body is
// held on every request with an audit entry.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// heldLen returns how many body bytes the gate holds.
func (g *auditGate) heldLen() int {
	if g.held == nil {
		return 0
	}
	return len(*g.held)
}

func (g *auditGate) WriteHeader(code int) {
	switch {
	case !g.settled:
		if g.status == 0 {
			g.status = code
		}
	case g.err == nil:
		g.ResponseWriter.WriteHeader(code)
	}
}

func (g *auditGate) Write(b []byte) (int, error) {
	if !g.settled {
		if g.heldLen()+len(b) <= HoldBytes {
			if g.status == 0 {
				g.status = http.StatusOK
			}
			if g.held == nil {
				g.held = heldBuffers.Get().(*[]byte)
			}
			*g.held = append(*g.held, b...)
			return len(b), nil
		}
		if err := g.release(); err != nil {
			return 0, err
		}
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.ResponseWriter.Write(b)
}

// FlushError releases what the gate held and flushes it to the client
// (http.ResponseController.Flush finds it).
func (g *auditGate) FlushError() error {
	if err := g.release(); err != nil {
		return err
	}
	return http.NewResponseController(g.ResponseWriter).Flush()
}

func (g *auditGate) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// Audit records one entry and returns once it is durable. With no Auditor
// configured it records nothing. The error is the one the request answers
// with (EUNAVAILABLE) if the entry could not be recorded.
func (g *Gate) Audit(ctx context.Context, r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject, outcome, detail string) error {
	if g.Auditor == nil {
		return nil
	}
	return g.auditFailed(ctx, g.Auditor.Record(ctx, g.auditEntry(r, p, action, subject, outcome, detail)))
}

// AuditUnauthenticated records the entry of an unauthenticated failure
// through FailureAuditor, which bounds how fast they grow the log; without
// one, as Audit does.
func (g *Gate) AuditUnauthenticated(ctx context.Context, r *http.Request, p *vigil.Principal, action vigil.AuditAction, outcome, detail string) error {
	if g.FailureAuditor == nil {
		return g.Audit(ctx, r, p, action, "", outcome, detail)
	}
	return g.auditFailed(ctx, g.FailureAuditor.Record(ctx, g.auditEntry(r, p, action, "", outcome, detail)))
}

// auditEntry returns the entry of request r by p.
func (g *Gate) auditEntry(r *http.Request, p *vigil.Principal, action vigil.AuditAction, subject, outcome, detail string) vigil.AuditEntry {
	e := vigil.AuditEntry{
		Time:      g.Time(),
		Action:    action,
		SubjectID: subject,
		Resource:  r.Pattern,
		Remote:    remoteHost(r),
		Outcome:   outcome,
		Detail:    detail,
	}
	if e.Action == "" {
		e.Action = vigil.AuditTokenUse
	}
	if p != nil {
		e.Actor, e.ActorName, e.Role = p.UserID, p.Name, p.Role
		if p.Role == vigil.RoleDevice {
			e.Actor = p.DeviceID
		}
	}
	return e
}

// auditFailed translates the error of an audit write into the error the
// request answers with (EUNAVAILABLE), and logs it; nil stays nil.
func (g *Gate) auditFailed(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	g.Logger.ErrorContext(ctx, "audit log unavailable; refusing the request", "err", err)
	return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "audit log unavailable", Err: err}
}
