// Package web serves the dashboard: server-rendered pages (html/template)
// and the static files they use, embedded from ui/ (templates/, static/),
// and the sign-in pages, including sign-in at an OpenID Connect provider.
// Changes made on a page go to the JSON API (package api) from the page's
// script; live updates come from its event stream.
//
// Every page is declared in routes.go with its access rule (gate.Rule,
// AsPage): a refused page request is answered with an error page or, when
// unauthenticated, a redirect to the sign-in page.
package web

import (
	"context"
	"net/http"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Handler serves the dashboard. Create it with New.
type Handler struct {
	*gate.Gate
	pages  *pages
	trends *trendCache // the worklist's trend lines (web_worklist.go)
}

// New returns the dashboard over g, with its templates parsed, and makes
// it g's renderer of error pages. The templates are part of the binary:
// an error parsing them is a defect of the build (the package tests parse
// them).
func New(g *gate.Gate) (*Handler, error) {
	ps, err := parsePages()
	if err != nil {
		return nil, err
	}
	h := &Handler{Gate: g, pages: ps, trends: &trendCache{}}
	g.Pages = h
	return h, nil
}

// RenderError renders the error page (gate.PageRenderer).
func (s *Handler) RenderError(w http.ResponseWriter, r *http.Request, status int, title, message string) error {
	return s.render(w, r, status, "error", pageData{Title: title, Body: message})
}

// EventVitals returns rs, readings of patient subject, as the dashboard
// shows them, for the vitals of reading events (api.Handler.EventVitals);
// nil if none is shown.
func (s *Handler) EventVitals(ctx context.Context, subject string, rs []vigil.Reading) any {
	vs := toVitalsOut(s.displayReadings(ctx, subject, rs))
	if len(vs) == 0 {
		return nil
	}
	return vs
}
