// Package http assembles Vigil's HTTP server: the route tables of the JSON
// API (package api), the FHIR API (package fhirapi) and the dashboard
// (package web) in one mux, each route wrapped by the gate (package gate)
// with its access rule, plus the health, readiness and metrics endpoints
// and a catch-all that answers 404. Only package server imports it.
//
// Routes are not declared here: each package declares its own, in its
// routes.go. The union of the three tables is what the authorization
// matrix test (access_test.go) checks: every route has a rule, nothing is
// reachable without one (deny by default).
package http

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/api"
	"github.com/vigil-health/vigil/fhirapi"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/web"
)

// Server is Vigil's HTTP server. Set the fields of its Deps, then call
// Handler; Close stops what the handlers run in the background.
type Server struct {
	gate.Deps

	gate *gate.Gate
	api  *api.Handler
	fhir *fhirapi.Handler
	web  *web.Handler
}

// Handler returns the root handler with every route, its access rule,
// logging, metrics and security headers. Call it once.
func (s *Server) Handler() http.Handler {
	s.gate = gate.New(&s.Deps)
	s.api = api.New(s.gate)
	s.fhir = fhirapi.New(s.gate)
	w, err := web.New(s.gate)
	if err != nil {
		// The dashboard's templates are part of the binary: failing to
		// parse them is a defect of the build (the web tests parse them).
		panic(err)
	}
	s.web = w
	s.api.EventVitals = s.web.EventVitals
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.Pattern, s.gate.Wrap(rt))
	}
	mux.Handle("/", s.gate.Wrap(gate.Route{Pattern: "/", Access: gate.Public, Handle: func(w http.ResponseWriter, r *http.Request) error {
		return vigil.Errorf(vigil.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}}))
	return gate.SecurityHeaders(mux)
}

// routes is the union of every route table: the server's own, the JSON
// API's, the dashboard's and the FHIR API's. Handler must have run.
func (s *Server) routes() []gate.Route {
	own := []gate.Route{
		{Pattern: "GET /healthz", Access: gate.Public, Handle: s.healthz},
		{Pattern: "GET /readyz", Access: gate.Public, Handle: s.readyz},
		{Pattern: "GET /metrics", Access: gate.Public, Handle: s.metrics},
	}
	rts := append(own, s.api.Routes()...)
	rts = append(rts, s.web.Routes()...)
	return append(rts, s.fhir.Routes()...)
}

// Close cancels running FHIR exports and waits for them to stop. It is
// safe to call on a server whose Handler was never built.
func (s *Server) Close() {
	if s.fhir != nil {
		s.fhir.Close()
	}
}

// EndExpiredBreakGlass records the end of every break-glass grant whose
// time has run out, auditing each (api.EndExpiredBreakGlass). The server
// calls it periodically.
func (s *Server) EndExpiredBreakGlass(ctx context.Context) error {
	return api.EndExpiredBreakGlass(ctx, s.Store, s.Auditor, s.now())
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	gate.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers whether every dependency in Ready can serve: 200 with
// each check "ok" (or "degraded: why"), else 503 naming the cause.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	for name, p := range s.Ready {
		if err := p.Ping(ctx); err != nil {
			checks[name] = "unavailable: " + readyCause(err)
			s.Logger.Warn("readiness check failed", "check", name, "err", err)
			ready = false
			continue
		}
		checks[name] = "ok"
		if d, ok := p.(gate.Degrader); ok {
			if why := d.Degraded(); why != "" {
				checks[name] = "degraded: " + why
			}
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	gate.WriteJSON(w, status, map[string]any{"ready": ready, "checks": checks})
	return nil
}

// readyCause names the root of a failed readiness check without a path:
// the operating system's error (such as "no space left on device") if
// there is one, else the message of the error's vigil.Error.
func readyCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return vigil.ErrorMessage(err)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) error {
	if s.Gatherer == nil {
		return vigil.Errorf(vigil.ENOTFOUND, "metrics are not enabled")
	}
	promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
