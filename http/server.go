// Package http serves Vigil's JSON API (/api/v1), health and metrics
// endpoints, and the dashboard (server-rendered pages), over net/http.
// Later the FHIR API joins it.
//
// Every route is declared once, in routes, with the rule that authorizes it;
// nothing is reachable without a rule (deny by default). Errors are
// translated to HTTP in one place, writeError.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/ingest"
)

// Authenticator resolves bearer secrets and passwords; *auth.Authenticator
// implements it.
type Authenticator interface {
	Authenticate(ctx context.Context, secret string) (*vigil.Principal, error)
	SignIn(ctx context.Context, username, password string, ttl time.Duration) (string, *vigil.Token, error)
	// SignInWith is a password sign-in with its second factor.
	SignInWith(ctx context.Context, in auth.SignInRequest, ttl time.Duration) (*auth.SignInResult, error)
	// StartSession creates a session of a user authenticated elsewhere
	// (OpenID Connect).
	StartSession(ctx context.Context, u *vigil.User, ttl time.Duration, name string) (string, *vigil.Token, error)
	// EnrolTOTP starts the enrolment of a user's second factor.
	EnrolTOTP(ctx context.Context, u *vigil.User) (*auth.Enrolment, error)
}

// Pinger reports whether a dependency can serve; used by /readyz, which
// answers 503 naming the cause if one returns an error.
type Pinger interface {
	Ping(ctx context.Context) error
}

// SpaceGuard guards the free space of the data directory.
type SpaceGuard interface {
	// CheckOptional returns nil if optional work that will write about
	// need bytes may go on; otherwise an error (EUNAVAILABLE) that says
	// why, for the caller.
	CheckOptional(need int64) error
}

// Degrader is a Pinger that can be degraded without being unready (a disk
// below its low-space watermark: optional work is refused, readings still
// taken). Degraded returns why, or "" when all is well; /readyz shows it.
type Degrader interface {
	Pinger
	Degraded() string
}

// auditLog returns where audit queries read.
func (s *Server) auditLog() vigil.AuditReader { return s.AuditLog }

// The counter of sign-ins refused for a user name longer than
// auth.MaxUsernameBytes, labelled by transport ("http"; the MQTT listener's
// is registered by its owner under the same name with "mqtt").
const (
	OversizeUsernamesMetric = "vigil_oversize_usernames_total"
	OversizeUsernamesHelp   = "Sign-ins and MQTT CONNECTs refused for a user name longer than 256 bytes (neither logged nor audited)."
)

// HTTPDurationMetric is the histogram of request durations, in seconds,
// labelled code (the status), method and route (the route's path pattern).
const HTTPDurationMetric = "vigil_http_request_duration_seconds"

// Defaults for Server limits.
const (
	DefaultMaxBodyBytes  = 1 << 20
	DefaultTokenTTL      = 12 * time.Hour
	DefaultBackfillBytes = 64 << 10
	quarantinePrefix     = 64 << 10 // bytes of an over-large body kept in the quarantine
)

// Server holds the API's dependencies. Set the fields, then call Handler.
type Server struct {
	Store    vigil.Store
	Ingest   *ingest.Service
	Auth     Authenticator
	Auditor  vigil.Auditor     // records every access; nil records nothing (tests of other concerns)
	AuditLog vigil.AuditReader // where audit queries read (the audit database, not Store); required by the audit routes
	// FailureAuditor records the entries of unauthenticated failures
	// (missing or bad credentials, failed sign-ins) in place of Auditor,
	// at a bounded rate per client address (audit.FailureLimiter); nil:
	// Auditor, unbounded.
	FailureAuditor vigil.Auditor
	Ready          map[string]Pinger // checked by /readyz, by name
	Logger         *slog.Logger
	Gatherer       prometheus.Gatherer   // served at /metrics
	Metrics        prometheus.Registerer // where the server registers its own metrics
	Now            func() time.Time
	// NewSecret creates a bearer secret and its stored hash for a new
	// device ("device") or service token ("user"); see package auth.
	NewSecret func(kind string) (secret string, hash []byte)
	// HashSecret hashes a presented bearer secret for lookup.
	HashSecret func(secret string) []byte
	// IssueDeviceCert issues a device client certificate (CommonName =
	// device id) and returns it, its new private key and the CA certificate,
	// PEM-encoded; nil when the server has no CA of its own.
	IssueDeviceCert func(deviceID string, validity time.Duration) (certPEM, keyPEM, caPEM []byte, err error)
	// DeviceStatus reports a device's connection state and last status
	// message (from the MQTT listener); nil when there is none.
	DeviceStatus func(deviceID string) (any, bool)
	// DeviceRevoked is told when a device is revoked or its token rotated,
	// so open connections of that device are closed at once; may be nil.
	DeviceRevoked func(deviceID string)
	// DeviceChanged is told when a device is reassigned; may be nil.
	DeviceChanged func(deviceID string)

	MaxBodyBytes int64         // largest request body; DefaultMaxBodyBytes if 0
	TokenTTL     time.Duration // sign-in token lifetime; DefaultTokenTTL if 0
	// AttemptedNames redacts the user names of failed sign-ins before they
	// are audited: a keyed hash and the first characters, never the name
	// as typed (it may be a password). nil keeps the first characters only.
	AttemptedNames *auth.NameRedactor
	// AdminReadsClinical lets admins read patients' clinical data
	// (readings). Admins always see demographics, which they manage.
	AdminReadsClinical bool
	// BreakGlassTTL is the longest break-glass access; DefaultBreakGlassTTL if 0.
	BreakGlassTTL time.Duration

	// Codes names code systems and displays in FHIR resources and lists the
	// codes of each observation category; nil: every code is LOINC and
	// category search finds nothing.
	Codes CodeCatalog
	// PublicURL is the site's base URL as clients reach it, such as
	// "https://vigil.example.org:8443" (a path prefix, as behind a proxy,
	// is kept). Links that lead a client on with its token — FHIR Bundle
	// "next", Location, export Content-Location and manifest URLs — are
	// built from it and never from a request's Host header, which the
	// client chooses. "" gives links that are paths on this site.
	PublicURL string
	// ExportDir is where FHIR bulk export jobs write their NDJSON files;
	// "" refuses bulk export (501). Its contents belong to the server.
	ExportDir string
	// ExportMaxBytes is the most bytes the files in ExportDir may take,
	// all exports together (DefaultExportMaxBytes if 0): a kick-off when
	// they take it all answers 429, and an export that would pass it
	// fails. ExportsPerCaller is the most exports one caller may keep,
	// running or finished (DefaultExportsPerCaller if 0): one more
	// answers 429 until the caller deletes one or it expires.
	ExportMaxBytes   int64
	ExportsPerCaller int
	// BackfillBytes is the body size above which POST /api/v1/readings
	// is a backfill, refused (503) while Space refuses optional work;
	// DefaultBackfillBytes if 0.
	BackfillBytes int64
	// Space says whether optional work that writes to the data directory
	// (an export) may start; nil allows it. Checked before an export
	// starts and while it writes.
	Space SpaceGuard
	// Version is the software version the CapabilityStatement reports.
	Version string
	// OIDC is the OpenID Connect provider staff sign in at (GET
	// /auth/oidc/login); nil: sign-in with local passwords only.
	OIDC OIDCProvider

	// AlertStore and AlertActions serve the alert routes, Events the live
	// event stream (GET /api/v1/events); nil answers 501 on those routes.
	AlertStore interface {
		vigil.AlertStore
		vigil.WebhookStore
	}
	AlertActions vigil.AlertActions
	Events       vigil.Events
	// RuleConfigs serves the rule configuration routes; Webhooks resends
	// webhook deliveries. nil answers 503 on those routes.
	RuleConfigs RuleConfigs
	Webhooks    WebhookSender
	// AllowHTTPWebhooks lets webhooks use plain http URLs (tests, a
	// receiver on the same host); off, they must be https.
	AllowHTTPWebhooks bool
	// eventHeartbeat and eventRefresh override the event stream's intervals
	// when positive (tests).
	eventHeartbeat, eventRefresh time.Duration

	httpDuration *prometheus.HistogramVec
	// oversizeNames counts sign-ins refused for a user name longer than
	// auth.MaxUsernameBytes.
	oversizeNames prometheus.Counter
	pages         *pages
	trends        *trendCache // the worklist's trend lines (web_worklist.go)
	exports       *exports
}

// Handler returns the root handler with every route, its authorization
// rule, logging, metrics and security headers.
func (s *Server) Handler() http.Handler {
	s.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    HTTPDurationMetric,
		Help:    "Time from receiving an HTTP request to the end of its answer, by status code, method and route (the route table's path pattern).",
		Buckets: prometheus.DefBuckets,
	}, []string{"code", "method", "route"})
	s.oversizeNames = prometheus.NewCounter(prometheus.CounterOpts{
		Name:        OversizeUsernamesMetric,
		Help:        OversizeUsernamesHelp,
		ConstLabels: prometheus.Labels{"transport": "http"},
	})
	if s.Metrics != nil {
		s.Metrics.MustRegister(s.httpDuration, s.oversizeNames)
	}
	// The dashboard's templates are part of the binary: failing to parse
	// them is a defect of the build (the package tests parse them).
	ps, err := parsePages()
	if err != nil {
		panic(err)
	}
	s.pages = ps
	s.trends = &trendCache{}
	s.exports = newExports()
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.wrap(rt))
	}
	mux.Handle("/", s.wrap(route{pattern: "/", access: public, handle: func(w http.ResponseWriter, r *http.Request) error {
		return vigil.Errorf(vigil.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path)
	}}))
	return securityHeaders(mux)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) maxBody() int64 {
	if s.MaxBodyBytes > 0 {
		return s.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// securityHeaders sets the headers every response carries: HSTS, a strict
// content security policy (the API serves no active content), no sniffing,
// and no caching (responses hold patient data).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
