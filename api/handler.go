// Package api serves Vigil's JSON API, /api/v1: sign-in and sessions,
// users, teams, tokens, patients, devices, readings, the quarantine, the
// audit log, alerts and their live event stream, rule configurations and
// webhooks. The API is described by the OpenAPI 3.1 document openapi.yaml
// in this directory, served at /api/v1/openapi.yaml.
//
// Every route is declared in routes.go with its access rule (gate.Rule);
// the gate authenticates, authorizes and audits each request before its
// handler runs, and translates handler errors to JSON.
package api

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
)

// Handler serves the JSON API. Create it with New.
type Handler struct {
	*gate.Gate
	// EventVitals renders a patient's readings as the dashboard shows them
	// (values in people's units, NEWS2 bands) for the "vitals" of reading
	// events; the assembler sets it to the dashboard's. nil, or a nil
	// result: events carry no vitals.
	EventVitals func(ctx context.Context, subject string, rs []vigil.Reading) any

	// oversizeNames counts sign-ins refused for a user name longer than
	// auth.MaxUsernameBytes.
	oversizeNames prometheus.Counter
}

// New returns the JSON API over g and registers its metrics with
// g.Metrics.
func New(g *gate.Gate) *Handler {
	h := &Handler{Gate: g}
	h.oversizeNames = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        gate.OversizeUsernamesMetric,
		Help:        gate.OversizeUsernamesHelp,
		ConstLabels: prometheus.Labels{"transport": "http"},
	})
	if g.Metrics != nil {
		g.Metrics.MustRegister(h.oversizeNames)
	}
	return h
}
