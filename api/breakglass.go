package api

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// DefaultBreakGlassTTL is how long break-glass access lasts unless asked
// for less.
const DefaultBreakGlassTTL = time.Hour

// Break-glass reasons are at least minReasonChars printable characters
// other than spaces, and at most maxReasonChars characters in all (Unicode
// code points), so that a reason says something and cannot be padded out
// with spaces, invisible or multi-byte characters.
const (
	minReasonChars = 10
	maxReasonChars = 500
)

// checkBreakGlassReason returns a *vigil.Error EINVALID unless reason is
// valid UTF-8 without control characters (no line breaks, which could
// forge lines where the reason is shown), at most maxReasonChars long, with
// at least minReasonChars printable, non-space characters.
func checkBreakGlassReason(reason string) error {
	bad := vigil.Errorf(vigil.EINVALID, `"reason" is required: say why, in %d to %d characters, at least %d of them printable and not spaces`,
		minReasonChars, maxReasonChars, minReasonChars)
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > maxReasonChars {
		return bad
	}
	n := 0
	for _, c := range reason {
		if unicode.IsControl(c) {
			return bad
		}
		if unicode.IsPrint(c) && !unicode.IsSpace(c) {
			n++
		}
	}
	if n < minReasonChars {
		return bad
	}
	return nil
}

// breakGlass opens a patient outside the clinician's teams, for a stated
// reason, for a limited time. The start is audited here; the end is audited
// by EndExpiredBreakGlass when the time runs out.
func (s *Handler) breakGlass(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Reason   string `json:"reason"`
		Duration string `json:"duration"`
	}
	if err := s.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	in.Reason = strings.TrimSpace(in.Reason)
	if err := checkBreakGlassReason(in.Reason); err != nil {
		return err
	}
	ttl := s.BreakGlassTTL
	if ttl <= 0 {
		ttl = DefaultBreakGlassTTL
	}
	if in.Duration != "" {
		d, err := time.ParseDuration(in.Duration)
		if err != nil || d <= 0 || d > ttl {
			return vigil.Errorf(vigil.EINVALID, `"duration" must be a positive duration of at most %s`, ttl)
		}
		ttl = d
	}
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := s.Store.Patient(ctx, id); err != nil {
		return err
	}
	p := gate.Principal(ctx)
	now := s.Time()
	b := &vigil.BreakGlass{UserID: p.UserID, SubjectID: id, Reason: in.Reason, Start: now, Expires: now.Add(ttl)}
	if err := s.Store.CreateBreakGlass(ctx, b); err != nil {
		return err
	}
	if err := s.Audit(ctx, r, p, vigil.AuditBreakGlassStart, id, vigil.AuditSuccess, "until "+b.Expires.Format(time.RFC3339)+": "+in.Reason); err != nil {
		return err
	}
	gate.WriteJSON(w, http.StatusCreated, b)
	return nil
}

// listBreakGlass shows admins break-glass grants (?open=true: not yet ended).
func (s *Handler) listBreakGlass(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	bs, err := s.Store.BreakGlasses(r.Context(), vigil.BreakGlassFilter{UserID: q.Get("user"), SubjectID: q.Get("patient"), Open: q.Get("open") == "true", Limit: 1000})
	if err != nil {
		return err
	}
	if bs == nil {
		bs = []*vigil.BreakGlass{}
	}
	gate.WriteJSON(w, http.StatusOK, map[string]any{"break_glass": bs})
	return nil
}

// EndExpiredBreakGlass records the end of every grant of store whose time
// has run out at now, auditing each with auditor (nil: unaudited). The
// server calls it periodically.
func EndExpiredBreakGlass(ctx context.Context, store vigil.Store, auditor vigil.Auditor, now time.Time) error {
	bs, err := store.BreakGlasses(ctx, vigil.BreakGlassFilter{Open: true})
	if err != nil {
		return err
	}
	for _, b := range bs {
		if now.Before(b.Expires) {
			continue
		}
		if err := store.EndBreakGlass(ctx, b.ID, b.Expires); err != nil {
			return err
		}
		if auditor != nil {
			e := vigil.AuditEntry{Time: now, Actor: b.UserID, Role: vigil.RoleClinician, Action: vigil.AuditBreakGlassEnd,
				SubjectID: b.SubjectID, Resource: "break-glass " + b.ID, Outcome: vigil.AuditSuccess, Detail: "expired"}
			if err := auditor.Record(ctx, e); err != nil {
				return err
			}
		}
	}
	return nil
}
