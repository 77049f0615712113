// Package gate is what every HTTP surface of Vigil shares: the access rule
// each route declares (Rule, Route), the middleware that applies it
// (Gate.Wrap: authentication, authorization, the audit gate, metrics and
// logs), the one place errors are translated to HTTP — JSON errors,
// FHIR OperationOutcomes and dashboard pages (errors.go) — and the handler
// dependencies (Deps) the JSON API (package api), the FHIR API (package
// fhirapi) and the dashboard (package web) hold through a *Gate.
//
// Whether a principal may see a patient is decided by auth.PatientAccess;
// Gate.CanAccessPatient asks it with the node's settings.
//
// Files: rule.go (the access rule and its builders), middleware.go (Wrap),
// authenticate.go (credentials, sessions, CSRF), authorize.go (applying a
// rule), auditgate.go (audit entries and the gate that holds a response
// back until its entry is durable), errors.go, request.go (helpers of
// handlers: JSON bodies, limits, paging), monitoring.go (the patients of a
// remote monitoring report).
package gate

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/billing"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/mapping"
	"github.com/vigil-health/vigil/oidc"
	"github.com/vigil-health/vigil/rules"
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

// Eraser erases patients; *erasure.Service implements it.
type Eraser interface {
	// Check returns nil if the patient may be erased now, else why not
	// (ENOTFOUND, ELEGALHOLD, ERETENTION).
	Check(ctx context.Context, subjectID string) error
	// Erase checks, then erases the patient; by is the user id of whoever
	// erases.
	Erase(ctx context.Context, subjectID, by string) (*vigil.Erasure, error)
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

// OIDCProvider is an OpenID Connect provider staff sign in at;
// *oidc.Provider implements it.
type OIDCProvider interface {
	AuthURL(f oidc.Flow) string
	// Exchange redeems a callback's code and verifies the ID token against
	// f (see oidc.Provider.Exchange).
	Exchange(ctx context.Context, code string, f oidc.Flow) (*oidc.Identity, error)
	EndSessionURL(idToken, postLogout string) string
	SessionTTL() time.Duration
	// VerifyAccessToken verifies an access token the provider issued to a
	// SMART app (see oidc.Provider.VerifyAccessToken).
	VerifyAccessToken(ctx context.Context, token string) (*oidc.AccessToken, error)
	// SMARTConfiguration is the document of /.well-known/smart-configuration.
	SMARTConfiguration() map[string]any
}

// RuleConfigs resolves and saves versioned rule configurations;
// *alerting.Configs implements it.
type RuleConfigs interface {
	// Effective returns the configuration in force for a scope and the
	// scope it comes from ("default" for the built-in defaults).
	Effective(scope string) (rules.Config, string)
	// Save stores body (a JSON rules.Config, complete or partial, decoded
	// over the configuration in force) as the scope's next version.
	Save(ctx context.Context, scope string, body []byte, ifVersion int, author, note string) (*vigil.RuleConfig, error)
	// Revert makes the scope inherit its parent's configuration again.
	Revert(ctx context.Context, scope string, ifVersion int, author, note string) (*vigil.RuleConfig, error)
}

// WebhookSender resends webhook deliveries; *alerting.Webhooks implements it.
type WebhookSender interface {
	Resend(ctx context.Context, deliveryID string) (*vigil.WebhookDelivery, error)
}

// CodeCatalog is what the FHIR API needs of the code catalogue (code
// systems, displays, and the list of codes for category search);
// *catalog.Catalog implements it.
// GatewaySubmitter takes a gateway's request of Bluetooth characteristic
// values (POST /api/v1/gateway/gatt); *gatt.Gateway implements it. Submit
// returns once what it accepted and what it refused are durable; its
// Result and errors are those of ingest.Service.Submit.
type GatewaySubmitter interface {
	Submit(ctx context.Context, p *vigil.Principal, body []byte) (*ingest.Result, error)
}

type CodeCatalog interface {
	Lookup(code string) (catalog.Entry, bool)
	Entries() []catalog.Entry
}

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

// Defaults for Deps limits.
const (
	DefaultMaxBodyBytes  = 1 << 20
	DefaultTokenTTL      = 12 * time.Hour
	DefaultBackfillBytes = 64 << 10
	// QuarantinePrefix is how many bytes of an over-large body are kept in
	// the quarantine.
	QuarantinePrefix = 64 << 10
	// DefaultMessagesPerHour is how many secure messages one user may
	// write in an hour.
	DefaultMessagesPerHour = 60
)

// Deps are the dependencies and settings of Vigil's HTTP handlers, shared
// by the JSON API, the FHIR API and the dashboard. The assembler (package
// http) holds one; fields may be changed until the first request.
type Deps struct {
	Store vigil.Store
	// Erasure erases patients (*erasure.Service); nil: the erasure routes
	// answer 501.
	Erasure Eraser
	Ingest  *ingest.Service
	// Mappings runs vendor templates (package mapping) for the template
	// routes and the quarantine console; nil answers 503 on those routes.
	Mappings *mapping.Service
	// Gateway decodes the characteristic values Bluetooth gateways relay
	// (POST /api/v1/gateway/gatt); nil answers 501 there.
	Gateway  GatewaySubmitter
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
	Metrics        prometheus.Registerer // where the handlers register their own metrics
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
	// HL7SendersChanged is told when an HL7 sender is registered, so that
	// the MLLP listener sees it at once; may be nil.
	HL7SendersChanged func()

	MaxBodyBytes int64         // largest request body; DefaultMaxBodyBytes if 0
	TokenTTL     time.Duration // sign-in token lifetime; DefaultTokenTTL if 0
	// AttemptedNames redacts the user names of failed sign-ins before they
	// are audited: a keyed hash and the first characters, never the name
	// as typed (it may be a password). nil keeps the first characters only.
	AttemptedNames *auth.NameRedactor
	// AdminReadsClinical lets admins read patients' clinical data
	// (readings). Admins always see demographics, which they manage.
	AdminReadsClinical bool
	// BreakGlassTTL is the longest break-glass access; DefaultBreakGlassTTL
	// of package api if 0.
	BreakGlassTTL time.Duration
	// Consents are the patients' consents (decision 26). When set,
	// integrations see only the patients whose sharing consent names them,
	// except those in ConsentExempt (user ids of the site's own systems);
	// the consent routes and research export need it. nil: integrations
	// are not gated and the consent routes answer 501 (tests of other
	// concerns; the server always sets it).
	Consents      vigil.ConsentStore
	ConsentExempt map[string]bool
	// Monitoring keeps clinicians' time entries and counts days with data
	// for the remote monitoring report; nil: its routes answer 501.
	// MonitoringRules are its thresholds; the zero value is
	// billing.Default.
	Monitoring      vigil.MonitoringStore
	MonitoringRules billing.Rules
	// ReportZone is the site's time zone: the calendar days and months of
	// the monitoring report, unless a request names another; nil: UTC.
	ReportZone *time.Location
	// Medications are the patients' medication orders and confirmed doses;
	// nil: the medication routes answer 501. Adherence is the site's
	// on-time window and missed-dose grace (zero: the defaults).
	Medications vigil.MedicationStore
	Adherence   adherence.Options
	// ResearchKey is the site's research key (package deid): research ids
	// and date shifts of de-identified exports. nil refuses research
	// exports (501).
	ResearchKey []byte

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
	// Exports keeps FHIR bulk export jobs and their NDJSON files: a local
	// directory (package exportdir), or the PostgreSQL store every node
	// shares, so that any node answers an export's status and serves its
	// files. nil refuses bulk export (501). NodeID names this node in the
	// jobs it runs (server.Options.NodeID).
	Exports vigil.ExportFiles
	NodeID  string
	// ExportMaxBytes is the most bytes the files in Exports may take,
	// all exports together (DefaultExportMaxBytes of package fhirapi if 0):
	// a kick-off when they take it all answers 429, and an export that
	// would pass it fails. ExportsPerCaller is the most exports one caller
	// may keep, running or finished (DefaultExportsPerCaller if 0): one
	// more answers 429 until the caller deletes one or it expires.
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
	// Messages keeps secure messages (decision 29; the node hands a
	// keys.Messages, sealing them); nil answers 501 on the message routes.
	// PublishEvent puts an event on the live event stream (the alerting
	// hub); nil publishes nothing. MessagesPerHour bounds the messages one
	// user may write in an hour (DefaultMessagesPerHour if 0).
	Messages        vigil.MessageStore
	PublishEvent    func(vigil.Event)
	MessagesPerHour int
	// Appointments keeps televisits; nil answers 501 on their routes.
	// TelevisitURL is the video link template: "{{id}}" in it is replaced
	// by the appointment's room (an unguessable id, never patient
	// identity); "" answers 501 on join.
	Appointments vigil.AppointmentStore
	TelevisitURL string
	// EventHeartbeat and EventRefresh override the event stream's
	// intervals when positive (tests).
	EventHeartbeat, EventRefresh time.Duration
}

// PageRenderer renders the HTML page of a refused or failed dashboard
// request; the dashboard (package web) implements it with its templates.
type PageRenderer interface {
	RenderError(w http.ResponseWriter, r *http.Request, status int, title, message string) error
}

// Gate applies access rules to requests and holds the handlers' shared
// dependencies; the handler types of packages api, fhirapi and web embed
// a *Gate. Create it with New.
type Gate struct {
	*Deps
	// Pages renders dashboard error pages; nil answers them as JSON.
	Pages PageRenderer

	httpDuration *prometheus.HistogramVec
}

// New returns the gate over d and registers its metrics with d.Metrics
// (once per Deps: a second New over the same registry panics).
func New(d *Deps) *Gate {
	g := &Gate{Deps: d}
	g.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    HTTPDurationMetric,
		Help:    "Time from receiving an HTTP request to the end of its answer, by status code, method and route (the route table's path pattern).",
		Buckets: prometheus.DefBuckets,
	}, []string{"code", "method", "route"})
	if d.Metrics != nil {
		d.Metrics.MustRegister(g.httpDuration)
	}
	return g
}

// Time returns the current time in UTC, from Deps.Now if set.
func (g *Gate) Time() time.Time {
	if g.Now != nil {
		return g.Now().UTC()
	}
	return time.Now().UTC()
}

// MaxBody is the largest request body: MaxBodyBytes, or
// DefaultMaxBodyBytes if 0.
func (g *Gate) MaxBody() int64 {
	if g.MaxBodyBytes > 0 {
		return g.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// SessionTTL is the lifetime of a sign-in token or session: TokenTTL, or
// DefaultTokenTTL if 0.
func (g *Gate) SessionTTL() time.Duration {
	if g.TokenTTL > 0 {
		return g.TokenTTL
	}
	return DefaultTokenTTL
}
