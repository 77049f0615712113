// Package server assembles a Vigil node from its parts: the store (SQLite
// in the data directory, or PostgreSQL), the durable log, the ingest pipeline and the HTTPS API. It is the library
// form of `vigil serve`: Options → New → Start → Shutdown.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/auth"
	"github.com/vigil-health/vigil/backup"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/erasure"
	"github.com/vigil-health/vigil/exportdir"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/gatt"
	"github.com/vigil-health/vigil/hl7"
	vhttp "github.com/vigil-health/vigil/http"
	"github.com/vigil-health/vigil/ingest"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/mapping"
	"github.com/vigil-health/vigil/mqtt"
	"github.com/vigil-health/vigil/oidc"
	"github.com/vigil-health/vigil/pki"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/retention"
	"github.com/vigil-health/vigil/sqlite"
)

// Options configure a node. The zero value of every field but DataDir is a
// working default.
type Options struct {
	DataDir  string // everything the node keeps; created 0700 if missing
	HTTPAddr string // HTTPS listen address; default ":8443"; "127.0.0.1:0" picks a free port

	// PublicURL is the base URL clients reach the node at, such as
	// "https://vigil.example.org:8443": links that a client follows with
	// its token (FHIR Bundle next, export status and file URLs) are built
	// from it, never from a request's Host header. Default: URL(), from
	// the listen address. See CheckPublicURL.
	PublicURL string

	TLSCert, TLSKey string   // a user-supplied certificate and key; default: issued by the node's own CA
	TLSHosts        []string // extra host names or addresses for the generated certificate

	AdminPassword      string        // password for the "admin" user created on first start; random if empty
	AdminReadsClinical bool          // admins may read clinical data (readings); off by default
	WebhookAllowHTTP   bool          // webhooks may use plain http URLs; off by default (https only)
	SessionIdle        time.Duration // sign-in sessions end after this long unused; default 30 minutes
	BreakGlassTTL      time.Duration // longest break-glass access; default 1 hour
	// ConsentExemptIntegrations are the user ids of integrations that see
	// every patient without the patients' sharing consent: systems of the
	// site's own care (decision 26). Every other integration sees only the
	// patients who consented to it.
	ConsentExemptIntegrations []string
	// TelevisitURL is the template of televisit video links, such as
	// "https://meet.example.org/vigil-{{id}}" ({{id}}: the appointment's
	// unguessable room); "" leaves joining a televisit off (501).
	TelevisitURL string
	// TelevisitReminderLead is how long before a televisit its reminder
	// goes out on the event stream; default DefaultTelevisitReminderLead.
	TelevisitReminderLead time.Duration
	// AuditSync is when a response that reads or changes patient data may
	// leave: AuditSyncRequest (the default, "") once its audit entry is on
	// disk, AuditSyncInterval once it is written to the audit journal.
	AuditSync string
	// AuditFailuresPerAddr and AuditFailureInterval bound the audit
	// entries of unauthenticated failures (bad credentials, failed
	// sign-ins, refused MQTT CONNECTs): per client address and interval,
	// the first AuditFailuresPerAddr are recorded one by one, the rest
	// counted in one entry. Defaults: 10 per minute.
	AuditFailuresPerAddr int
	AuditFailureInterval time.Duration
	// AuditCheckpointInterval is how often the head of the audit chain is
	// signed and appended to the checkpoint file (also at start and at
	// shutdown); default 1 minute. AuditCheckpointCopy, if set, is a file
	// on other storage that gets every checkpoint too.
	AuditCheckpointInterval time.Duration
	AuditCheckpointCopy     string
	// AuditAcceptDamage starts the node on an audit log that is damaged
	// or behind its last checkpoint, which it otherwise refuses: the
	// damage is logged and audited (see openAudit).
	AuditAcceptDamage bool

	MQTTAddr      string // MQTT over TLS listen address; default ":8883"; "off" disables it
	MQTTPlainAddr string // plain-TCP MQTT listen address; "" (default) disables it

	// Store is where the node keeps its stores: "" (the default) for the
	// SQLite databases in DataDir, or a PostgreSQL connection string
	// (postgres://…) for one PostgreSQL database that holds all three
	// (main, alerts, audit; see package postgres). The audit journal,
	// certificates and keys stay in DataDir either way.
	Store string
	// StoreRetention, with PostgreSQL, is how long readings are kept:
	// weekly partitions wholly older than it are dropped (checked at start
	// and every hour), except a week holding readings of a patient under
	// legal hold; 0 (the default) keeps every reading. Retention.Readings
	// applies on either store.
	StoreRetention time.Duration
	// KEKFile is the key-encryption key file that wraps the patients'
	// data keys (keys.FileKEK); default <data>/kek (KEKFileName). It is
	// created, 0600, on first start; a file group or others may read is
	// refused. Keep a copy apart from the backups (docs/security.md).
	KEKFile string
	// ErasureMinRetention refuses to erase a patient whose records are
	// younger than this (erasure.Service.MinRetention); 0: no minimum.
	ErasureMinRetention time.Duration
	// ErasureSettle is how long after an erasure its last deletion pass
	// runs (erasure.Service.Settle); 0: erasure.DefaultSettle.
	ErasureSettle time.Duration
	// Retention is how long readings, resolved alerts, quarantine items
	// and audit entries are kept; zero durations keep them for ever (the
	// default). Audit entries are deleted only up to a signed checkpoint
	// older than their retention (see package retention).
	// RetentionInterval is how often expired data is looked for; default
	// retention.DefaultInterval.
	Retention         retention.Policy
	RetentionInterval time.Duration
	// MLLPAddr is the listen address of HL7 v2 over MLLP ("" or "off":
	// none, the default here; vigil serve's default is ":2575"). It serves
	// TLS with the node's certificate unless MLLPPlain.
	MLLPAddr  string
	MLLPPlain bool // serve MLLP over plain TCP (a sender on a private link that cannot speak TLS)
	// MLLPClientCert is "optional" (the default, ""): a client certificate
	// from the node's CA is verified when a sender presents one; or
	// "require": a sender must present one.
	MLLPClientCert string
	// MLLPTimeZone is the IANA time zone of HL7 times sent without an
	// offset; default UTC.
	MLLPTimeZone        string
	MLLPMaxConns        int           // most MLLP connections at once; default hl7.DefaultMaxConns
	MLLPMaxMessageBytes int           // largest HL7 message; default hl7.DefaultMaxMessageBytes
	MLLPIdleTimeout     time.Duration // an MLLP connection without a message for this long is closed; default hl7.DefaultIdleTimeout
	// ReportTimeZone is the IANA time zone of the remote monitoring
	// report's calendar days and months (docs/monitoring-report.md);
	// default UTC.
	ReportTimeZone string

	NATSURL     string        // external NATS cluster, its servers' URLs comma-separated; default: JetStream embedded in-process
	LogMaxAge   time.Duration // how long the durable log keeps batches; default 7 days
	CatalogFile string        // extra codes and units merged over the built-in catalogue
	Version     string        // software version, reported by the FHIR CapabilityStatement

	// NATSReplicas is how many servers of the NATS cluster hold each
	// stream and durable consumer (bus.Options.Replicas): 1..5 and not
	// more than NATSURL lists; default 1. A sender's acknowledgement
	// waits for the replicated write.
	NATSReplicas int

	// NodeID names this node among several that share one PostgreSQL
	// store and one NATS cluster (decision 33): it holds leases, signs its
	// audit chain and tags what the node writes. [A-Za-z0-9_-], 1 to 64
	// characters; default the host name (cleaned to that alphabet). Two
	// running nodes must never share one.
	NodeID string

	// Partitions is how many partitions the log's batches are divided
	// into by patient (bus.Options.Partitions), each evaluated by one node
	// at a time: 1 with the embedded log; default 16 with NATSURL. Fixed
	// for the life of a stream.
	Partitions int

	// DiskLowWatermark is the free space of the data directory's disk
	// below which the node refuses optional work (exports), logs loudly
	// and shows it in /metrics and /readyz, while it keeps taking
	// readings: a size ("1GiB") or a percentage of the disk ("5%");
	// default DefaultDiskLowWatermark, "0" turns it off.
	DiskLowWatermark string
	// ExportMaxBytes is the most bytes the files of FHIR bulk exports may
	// take in <data>/fhir-export (in the database with PostgreSQL), all
	// callers together (default 4 GiB);
	// ExportsPerCaller the most exports one caller may keep, running or
	// finished, until it deletes them or they expire (default 5).
	ExportMaxBytes   int64
	ExportsPerCaller int
	// BackfillBytes is the body size above which a POST of readings is a
	// backfill, refused while the disk is below DiskLowWatermark (default
	// 64 KiB).
	BackfillBytes int64

	MaxBodyBytes int64         // largest request body
	MaxFuture    time.Duration // how far ahead of the clock a reading may be
	TokenTTL     time.Duration // sign-in token lifetime

	// AlertRearm is the alerts' re-arm window: a condition that clears and
	// returns within it re-opens its alert (alerting.Timers.Rearm); 0 means
	// alerting.DefaultRearm (30 minutes), negative turns it off.
	AlertRearm time.Duration
	// DoseWindow is how far from its scheduled time a dose counts as on
	// time, DoseGrace how long after it a dose not taken raises a
	// missed-dose alert (package adherence); 0: 60 minutes each.
	DoseWindow, DoseGrace time.Duration

	// AdminTOTPOptional lets admins sign in with a password alone (a demo);
	// by default an admin enrols a TOTP second factor at first sign-in.
	AdminTOTPOptional bool
	// OIDC, if set, signs staff in at an OpenID Connect provider, which is
	// discovered at start (New fails if it cannot be reached).
	OIDC *oidc.Config

	Logger *slog.Logger

	space diskSpace // measures the data directory's disk; statfs if nil (tests)

	// Announce receives the lines a person starting the node must see once
	// (the generated admin password, the CA file and fingerprint). Default: discarded.
	Announce func(format string, args ...any)
}

// Server is a running node.
type Server struct {
	opts      Options
	logger    *slog.Logger
	store     mainStore   // the main database (MainDB, or PostgreSQL)
	patients  *keys.Store // store with identity sealed: what the node hands out
	erasure   *erasure.Service
	erased    erasedSet // erased patients, whom the rules engine ignores
	retention *retention.Sweeper
	alerts    alertStore        // alerts, the rules engine's checkpoint, webhooks (AlertsDB)
	auditDB   auditStore        // the audit log (AuditDB)
	earlier   vigil.AuditReader // the audit log SQLite kept in MainDB before AuditDB; nil with PostgreSQL
	pg        *postgres.Store   // the main store when it is PostgreSQL: its partitions are maintained
	exports   vigil.ExportFiles // FHIR bulk export jobs and files (exportFiles)
	log       *bus.Log
	catalog   *catalog.Catalog
	registry  *prometheus.Registry
	ingest    *ingest.Service
	gateway   *gatt.Gateway       // Bluetooth characteristic values relayed by gateways (HTTP and MQTT)
	mappings  *mapping.Service    // vendor formats by template, in front of ingest
	devices   *ingest.DeviceCache // the HTTPS ingest's device records
	writer    *ingest.Writer
	auditor   *audit.Recorder
	ckpt      *checkpoints          // signs the audit chain's head (openAudit)
	failures  *audit.FailureLimiter // unauthenticated failures, bounded per address
	api       *vhttp.Server
	lockout   *auth.Lockout
	names     *auth.NameRedactor // attempted user names of failed sign-ins
	http      *nethttp.Server
	listener  net.Listener // bound by New, served by Start
	tls       *tls.Config  // the HTTPS listener's; MQTT's is derived from it
	mqtt      *mqtt.Server
	mqttLns   []mqttListener // bound by New, served by Start
	hl7       *hl7.Server
	mllpLn    net.Listener // bound by New, served by Start; nil without MLLP
	dirLock   *DirLock
	hub       *alerting.Hub
	configs   *alerting.Configs
	statuses  *statusSaver  // the MQTT device registry, saved
	disk      *diskGuard    // the data directory's free space
	logHealth *appendHealth // the log's appends, for readiness
	webhooks  *alerting.Webhooks
	// engine is the rules engine with one partition; with several
	// (Options.Partitions > 1) it is not run and serves the Actions only,
	// the partitions this node holds running in engines (cluster.go).
	engine  *alerting.Engine
	leases  vigil.Leases // with several partitions: the cluster's leases; nil with one
	enginMu sync.Mutex
	engines map[int]*alerting.Engine // with several partitions: those running here
	// streamsDone ends live event streams when the server shuts down, so
	// that the graceful shutdown does not wait for them.
	streamsDone chan struct{}
	engineDone  chan error
	// writerRun and engineRun supervise the writer and the engine (one
	// partition: the engine; several: the partitions' assigner), and
	// partRuns the engines of the partitions held here; all report to
	// /readyz.
	writerRun, engineRun supervised
	partRuns             partitionHealth
	aux                  sync.WaitGroup // rule configuration reloads, webhook deliveries
	caFile               string
	ca                   *pki.CA

	writerCancel context.CancelFunc
	writerDone   chan error
	sweepDone    chan struct{}
	started      bool
	shutdownOnce sync.Once
	shutdownErr  error
}

// mainStore, alertStore and auditStore are what a node needs of the main,
// alerts and audit stores.
type (
	mainStore interface {
		vigil.Store
		vigil.MappingStore
		vigil.ConsentStore
		vigil.MonitoringStore
		vigil.MedicationStore
		vigil.MessageStore
		vigil.AppointmentStore
		// Compact clears what the store keeps of deleted or overwritten
		// data (SQLite's write-ahead log, PostgreSQL's dead row versions).
		Compact(ctx context.Context) error
	}
	alertStore interface {
		vigil.AlertWebhookStore
		Close() error
	}
	auditStore interface {
		vigil.AuditStore
		vigil.AuditPruner
		Close() error
	}
)

// New opens the stores and the log and prepares the API; Start serves it.
// On error everything opened is closed again.
func New(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts, err = opts.withDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &Server{opts: opts, logger: opts.Logger, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.closeListeners()
			s.closeStorage(context.Background())
		}
	}()
	// In this order: each step uses what the steps before it made.
	for _, step := range []func(context.Context) error{
		s.lockDataDir,
		s.listen,
		s.loadCatalog,
		s.openStores,
		s.openLog,
		s.claimStore,
		s.bootstrapAdmin,
		s.startAudit,
		func(context.Context) error { return s.watchDisk() },
		s.buildIngest,
		s.buildAlerting,
		s.buildErasure,
		s.registerMetrics,
		s.loadTLS,
		s.buildAPI,
		s.buildMQTT,
		s.buildHL7,
		s.buildHTTP,
	} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// withDefaults checks o and returns it with the defaults New fills in.
func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		return o, errors.New("data directory is required")
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = ":8443"
	}
	if o.PublicURL != "" {
		var err error
		if o.PublicURL, err = CheckPublicURL(o.PublicURL); err != nil {
			return o, err
		}
	}
	if o.MQTTAddr == "" {
		o.MQTTAddr = ":8883"
	}
	if o.TelevisitURL != "" {
		var err error
		if o.TelevisitURL, err = CheckTelevisitURL(o.TelevisitURL); err != nil {
			return o, err
		}
	}
	if o.TelevisitReminderLead < 0 {
		return o, vigil.Errorf(vigil.EINVALID, "televisit reminder lead: not negative")
	}
	if o.TelevisitReminderLead == 0 {
		o.TelevisitReminderLead = DefaultTelevisitReminderLead
	}
	if o.Store != "" && !postgres.IsDSN(o.Store) {
		return o, vigil.Errorf(vigil.EINVALID, "store: want a postgres:// URL, or nothing for SQLite in the data directory")
	}
	if o.StoreRetention < 0 || o.StoreRetention > 0 && o.Store == "" {
		return o, vigil.Errorf(vigil.EINVALID, "store retention: only with a PostgreSQL store, and not negative")
	}
	switch o.MLLPClientCert {
	case "", MLLPClientCertOptional, MLLPClientCertRequire:
	default:
		return o, vigil.Errorf(vigil.EINVALID, "MLLP client certificates %q: want %q or %q", o.MLLPClientCert, MLLPClientCertOptional, MLLPClientCertRequire)
	}
	if o.MLLPTimeZone != "" {
		if _, err := time.LoadLocation(o.MLLPTimeZone); err != nil {
			return o, vigil.Errorf(vigil.EINVALID, "MLLP time zone %q: %v", o.MLLPTimeZone, err)
		}
	}
	if o.ReportTimeZone != "" {
		if _, err := time.LoadLocation(o.ReportTimeZone); err != nil {
			return o, vigil.Errorf(vigil.EINVALID, "report time zone %q: %v", o.ReportTimeZone, err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Announce == nil {
		o.Announce = func(string, ...any) {}
	}
	if o.SessionIdle == 0 {
		o.SessionIdle = 30 * time.Minute
	}
	if o.NodeID == "" {
		host, _ := os.Hostname()
		o.NodeID = DefaultNodeID(host)
	}
	if !validNodeID(o.NodeID) {
		return o, vigil.Errorf(vigil.EINVALID, "node ID %q: want 1 to 64 of A-Z, a-z, 0-9, '_' and '-'", o.NodeID)
	}
	switch {
	case o.Partitions < 0 || o.Partitions > 1024:
		return o, vigil.Errorf(vigil.EINVALID, "partitions: want 1 to 1024")
	case o.Partitions > 1 && o.NATSURL == "":
		return o, vigil.Errorf(vigil.EINVALID, "partitions: the embedded log has one partition; more need --nats-url")
	case o.Partitions == 0 && o.NATSURL != "":
		o.Partitions = DefaultPartitions
	case o.Partitions == 0:
		o.Partitions = 1
	}
	return o, nil
}

// DefaultPartitions is the log's partition count on an external NATS
// cluster: enough to spread the rules engine over up to 16 nodes.
const DefaultPartitions = 16

// DefaultNodeID is the node ID made from a host name: its characters
// outside [A-Za-z0-9_-] become '-', cut to 64; "node" if nothing is left.
func DefaultNodeID(host string) string {
	b := []byte(host)
	for i, c := range b {
		if !nodeIDChar(c) {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if len(b) == 0 {
		return "node"
	}
	return string(b)
}

func validNodeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !nodeIDChar(id[i]) {
			return false
		}
	}
	return true
}

func nodeIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// lockDataDir makes sure only one process at a time uses the data
// directory: a second node on the same directory would take over the live
// node's audit journal and log.
func (s *Server) lockDataDir(context.Context) (err error) {
	s.dirLock, err = LockDataDir(s.opts.DataDir)
	return err
}

// loadCatalog loads the built-in code catalogue and merges the site's
// catalogue file over it.
func (s *Server) loadCatalog(context.Context) error {
	s.catalog = catalog.Default()
	if s.opts.CatalogFile == "" {
		return nil
	}
	f, err := os.Open(s.opts.CatalogFile)
	if err != nil {
		return fmt.Errorf("open catalogue file: %w", err)
	}
	extra, err := catalog.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("catalogue file %s: %w", s.opts.CatalogFile, err)
	}
	if s.catalog, err = s.catalog.Merge(extra); err != nil {
		return fmt.Errorf("catalogue file %s: %w", s.opts.CatalogFile, err)
	}
	return nil
}

// KEKFileName is the default key-encryption key file in the data
// directory.
const KEKFileName = "kek"

// openStores opens the main database (SQLite in the data directory, or
// PostgreSQL) with identity sealed under the KEK file (sealing what an
// earlier version kept in plaintext) and the alerts database (the audit
// database is startAudit's).
func (s *Server) openStores(ctx context.Context) (err error) {
	if err := s.checkStoreKind(); err != nil {
		return err
	}
	if s.opts.Store != "" {
		err = s.openPostgres(ctx)
	} else {
		err = s.openSQLite(ctx)
	}
	if err != nil {
		return err
	}
	return s.sealIdentity(ctx)
}

// openSQLite opens the main and alerts databases in the data directory.
func (s *Server) openSQLite(ctx context.Context) error {
	main, err := sqlite.Open(ctx, filepath.Join(s.opts.DataDir, MainDB))
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	s.store, s.earlier = main, main.EarlierAudit()
	// Alerts live in a database file of their own, so that the rules
	// engine's commits never queue behind the store writer's large reading
	// transactions on SQLite's single writer (the alarm delay depends on it).
	alerts, err := sqlite.OpenAlerts(ctx, filepath.Join(s.opts.DataDir, AlertsDB))
	if err != nil {
		return fmt.Errorf("open alert store: %w", err)
	}
	s.alerts = alerts
	return nil
}

// sealIdentity wraps the main store in keys.Store under the KEK file and
// seals the identities an earlier version kept in plaintext.
func (s *Server) sealIdentity(ctx context.Context) error {
	kekFile := s.opts.KEKFile
	if kekFile == "" {
		kekFile = filepath.Join(s.opts.DataDir, KEKFileName)
	}
	sealed, err := SealIdentity(ctx, s.store, kekFile, s.logger)
	if err != nil {
		return err
	}
	s.patients = sealed
	return nil
}

// SealableStore is a main store whose identities SealIdentity seals.
type SealableStore interface {
	vigil.Store
	// Compact clears what the store keeps of overwritten data.
	Compact(ctx context.Context) error
}

// SealIdentity returns store with identity sealed under the KEK file
// kekFile, as a node opens it (vigil serve, and the commands that work on
// a node's store): the file is created only for a store that holds no
// wrapped key yet (with keys wrapped by a lost file, a new one would read
// no identity), and identities an earlier version kept in plaintext are
// sealed, the store compacted after. logger may be nil.
func SealIdentity(ctx context.Context, store SealableStore, kekFile string, logger *slog.Logger) (*keys.Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(kekFile); errors.Is(err, os.ErrNotExist) {
		ks, err := store.StaleKeys(ctx, "", 1)
		if err != nil {
			return nil, fmt.Errorf("open key-encryption key: %w", err)
		}
		if len(ks) > 0 {
			return nil, fmt.Errorf("open key-encryption key: %s does not exist, but the store holds keys wrapped by %s: restore the KEK file (it is kept apart from backups) or point --kek-file at it", kekFile, ks[0].Key.KEK)
		}
	}
	kek, err := keys.OpenFile(kekFile, true)
	if err != nil {
		return nil, fmt.Errorf("open key-encryption key: %w", err)
	}
	sealed := keys.NewStore(store, keys.NewKeyring(kek, store))
	n, err := sealed.SealPlaintext(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal patient identities: %w", err)
	}
	if n > 0 {
		// The plaintext is overwritten in the file (secure_delete); clear
		// the write-ahead log's copies too.
		if err := store.Compact(ctx); err != nil {
			logger.Warn("sealed patient identities, but the store may still hold their plaintext until it is compacted", "err", err)
		}
		logger.Info("sealed the identities of patients stored in plaintext", "patients", n)
	}
	return sealed, nil
}

// checkStoreKind refuses to start on a data directory whose node kept its
// stores elsewhere: with SQLite on a directory marked for PostgreSQL
// (backup.PostgresMarker), it would start on new, empty databases; with
// PostgreSQL on a directory that holds SQLite databases, it would leave
// their data behind and write its audit journal into another chain. A
// directory's first start with PostgreSQL marks it.
func (s *Server) checkStoreKind() error {
	marker := filepath.Join(s.opts.DataDir, backup.PostgresMarker)
	_, err := os.Stat(marker)
	marked := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check store: %w", err)
	}
	if s.opts.Store == "" {
		if marked {
			return vigil.Errorf(vigil.EINVALID, "the data directory %s belongs to a node whose stores are in PostgreSQL: start it with --store postgres://… (the file %s says so)",
				s.opts.DataDir, backup.PostgresMarker)
		}
		return nil
	}
	if marked {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.opts.DataDir, MainDB)); err == nil {
		return vigil.Errorf(vigil.EINVALID, "the data directory %s holds SQLite databases (%s): moving a node's data to PostgreSQL is not supported; start with a new data directory",
			s.opts.DataDir, MainDB)
	}
	body := "This node keeps its stores in PostgreSQL (vigil serve --store). vigil backup does not copy them:\n" +
		"back the database up with PostgreSQL's tools (pg_dump, pg_basebackup); see docs/operations.md.\n"
	if err := os.WriteFile(marker, []byte(body), 0o600); err != nil {
		return fmt.Errorf("mark data directory for PostgreSQL: %w", err)
	}
	return nil
}

// openPostgres opens the main and alerts stores on PostgreSQL and creates
// the readings partitions of this week and the next ones, dropping those
// past the retention.
func (s *Server) openPostgres(ctx context.Context) error {
	main, err := postgres.Open(ctx, s.opts.Store)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	s.store, s.pg = main, main
	alerts, err := postgres.OpenAlerts(ctx, s.opts.Store)
	if err != nil {
		return fmt.Errorf("open alert store: %w", err)
	}
	s.alerts = alerts
	return s.maintainPartitions(ctx)
}

// partitionEvery is how often a node on PostgreSQL creates the readings
// partitions ahead and applies the retention.
const partitionEvery = time.Hour

// maintainPartitions runs postgres.Store.MaintainPartitions once.
func (s *Server) maintainPartitions(ctx context.Context) error {
	dropped, err := s.pg.MaintainPartitions(ctx, time.Now(), s.opts.StoreRetention)
	if err != nil {
		return fmt.Errorf("maintain readings partitions: %w", err)
	}
	if len(dropped) > 0 {
		s.logger.Info("readings older than the retention dropped", "partitions", dropped, "retention", s.opts.StoreRetention)
	}
	return nil
}

// runPartitions maintains the partitions every partitionEvery until ctx
// ends; a failure is logged and tried again next time.
func (s *Server) runPartitions(ctx context.Context) {
	t := time.NewTicker(partitionEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.maintainPartitions(ctx); err != nil && ctx.Err() == nil {
				s.logger.Error("readings partitions not maintained; the writer still creates the partitions it needs", "err", err)
			}
		}
	}
}

// clustered reports whether other nodes may share this node's database
// and log: the store is PostgreSQL and the log an external NATS (decision
// 36). Then live events, MQTT takeovers and sign-in lockouts are shared
// with them; otherwise (the embedded default above all) they stay in this
// process, as on one node.
func (s *Server) clustered() bool { return s.opts.NATSURL != "" && s.pg != nil }

// broadcaster returns the log as the nodes' vigil.Broadcaster when
// clustered, else nil.
func (s *Server) broadcaster() vigil.Broadcaster {
	if s.clustered() {
		return s.log
	}
	return nil
}

// openLog opens the durable log: embedded JetStream, or an external
// cluster.
func (s *Server) openLog(ctx context.Context) (err error) {
	if s.log, err = bus.Open(ctx, bus.Options{
		Dir:        filepath.Join(s.opts.DataDir, "log"),
		URL:        s.opts.NATSURL,
		Replicas:   s.opts.NATSReplicas,
		Partitions: s.opts.Partitions,
		MaxAge:     s.opts.LogMaxAge,
		Logger:     s.opts.Logger,
	}); err != nil {
		return fmt.Errorf("open durable log: %w", err)
	}
	return nil
}

// startAudit opens the audit log (openAudit) and the bound on the audit
// entries of unauthenticated failures.
func (s *Server) startAudit(ctx context.Context) error {
	// Entries are made durable in a write-ahead journal first, by syncs
	// that concurrent requests share, and copied to audit.db in large
	// batches behind the requests (see docs/decisions/).
	var waitForWrite bool
	switch s.opts.AuditSync {
	case "", AuditSyncRequest:
	case AuditSyncInterval:
		waitForWrite = true
	default:
		return vigil.Errorf(vigil.EINVALID, "audit sync %q: want %q or %q", s.opts.AuditSync, AuditSyncRequest, AuditSyncInterval)
	}
	if err := s.openAudit(ctx, audit.RecorderOptions{
		Logger:       s.opts.Logger,
		WaitForWrite: waitForWrite,
	}); err != nil {
		return err
	}
	// Unauthenticated failures (bad credentials over HTTPS or MQTT) are
	// audited at a bounded rate per address, so that no stranger can grow
	// the audit log faster than that budget.
	s.failures = &audit.FailureLimiter{Auditor: s.auditor, PerAddr: s.opts.AuditFailuresPerAddr, Interval: s.opts.AuditFailureInterval}
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_audit_failures_suppressed_total",
		Help: "Unauthenticated failures over the per-address audit budget: counted in one aggregate entry per address and interval instead of one entry each.",
	}, func() float64 { return float64(s.failures.Suppressed()) }))
	return nil
}

// buildIngest prepares the ingest service (every inbound adapter's way to
// the log), the live event hub and the log→store writer, which notifies it.
func (s *Server) buildIngest(context.Context) error {
	s.logHealth = &appendHealth{Log: s.log, pinger: s.log, disk: s.disk}
	metrics := ingest.NewMetrics(s.registry)
	// HTTPS senders' device records are reused for a second (the API
	// forgets one at once when it changes the device); MQTT keeps a cache
	// of its own, so its service reads the store.
	s.devices = &ingest.DeviceCache{DeviceStore: s.store, TTL: time.Second}
	s.ingest = &ingest.Service{
		Log:       s.logHealth,
		Devices:   s.devices,
		Patients:  s.patients,
		Relays:    s.store,
		Catalog:   s.catalog,
		Logger:    s.opts.Logger,
		Metrics:   metrics,
		MaxFuture: s.opts.MaxFuture,
	}
	s.gateway = &gatt.Gateway{Ingest: s.ingest, Peripherals: s.store}
	s.mappings = &mapping.Service{Store: s.store, Pipeline: s.ingest, Devices: s.store, Users: s.store, Logger: s.opts.Logger}
	s.hub = &alerting.Hub{}
	if s.clustered() {
		s.hub.Broadcaster, s.hub.Metrics, s.hub.Logger = s.log, alerting.NewHubMetrics(s.registry), s.opts.Logger
	}
	s.writer = &ingest.Writer{Consumer: s.storeConsumer(), Store: s.patients, Logger: s.opts.Logger, Metrics: metrics, Notify: s.hub.NotifyReadings}
	return nil
}

// buildAlerting loads the rule configurations (main database) and prepares
// the webhooks and the rules engine (alerts database).
func (s *Server) buildAlerting(ctx context.Context) error {
	s.configs = &alerting.Configs{Store: s.store, Logger: s.opts.Logger}
	if err := s.configs.Load(ctx); err != nil {
		return err
	}
	s.webhooks = &alerting.Webhooks{Store: s.alerts, Logger: s.opts.Logger}
	// Erased patients (read before the engine loads its states) are
	// ignored by the engine, also in what it replays from the log.
	es, err := s.store.Erasures(ctx, false)
	if err != nil {
		return err
	}
	for _, e := range es {
		s.erased.add(e.SubjectID)
	}
	s.engine = s.newEngine()
	s.streamsDone = make(chan struct{})
	if s.partitioned() != nil {
		if s.leases, err = s.openLeases(ctx); err != nil {
			return err
		}
	}
	return nil
}

// newEngine returns a rules engine of the whole log, with the node's
// settings; each has a DoseWatch of its own.
func (s *Server) newEngine() *alerting.Engine {
	return &alerting.Engine{Consumer: s.log, Store: s.alerts, Log: s.log, Replay: s.log, Logger: s.opts.Logger, Hub: s.hub,
		Config: s.configs.For, Webhooks: s.webhooks, Timers: alerting.Timers{Rearm: s.opts.AlertRearm}, Erased: s.erased.has,
		Doses: &alerting.DoseWatch{Orders: s.store, Readings: s.store, Options: s.adherence()}}
}

// adherence is the site's adherence settings.
func (s *Server) adherence() adherence.Options {
	return adherence.Options{Window: s.opts.DoseWindow, Grace: s.opts.DoseGrace}
}

// erasureEvery is how often pending erasures are looked for and finished.
const erasureEvery = time.Minute

// buildErasure prepares the erasure service and the retention sweeper and
// registers their metrics.
func (s *Server) buildErasure(context.Context) error {
	s.erasure = &erasure.Service{
		Store: s.patients, Alerts: s.alerts, Keys: s.patients.Keyring(),
		Exports:      s.exportFiles(),
		Auditor:      s.auditor,
		Logger:       s.opts.Logger,
		MinRetention: s.opts.ErasureMinRetention,
		Settle:       s.opts.ErasureSettle,
		Drained:      s.drained,
		OnErase: func(id string) {
			s.erased.add(id)
			s.forget(id)
		},
	}
	s.retention = &retention.Sweeper{Store: s.store, Alerts: s.alerts, Holds: s.store, Auditor: s.auditor, Policy: s.opts.Retention, Logger: s.opts.Logger,
		AuditLog: s.auditDB, AuditCut: s.auditCut}
	for _, k := range retention.Kinds() {
		s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "vigil_retention_deleted_total",
			Help:        "Records deleted by the retention sweeper because the site's retention period had passed, by kind.",
			ConstLabels: prometheus.Labels{"kind": k},
		}, func() float64 { return float64(s.retention.Deleted(k)) }))
	}
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_erasures_completed_total",
		Help: "Erasures of patients whose health data this node finished deleting.",
	}, func() float64 { return float64(s.erasure.Completed()) }))
	return nil
}

// ExportDirName is the directory in the data directory that holds FHIR bulk
// export jobs and their files when the stores are SQLite (package exportdir).
const ExportDirName = "fhir-export"

// exportFiles is where FHIR bulk exports keep their jobs and files: the
// PostgreSQL store, where every node reads them, or <data>/fhir-export.
func (s *Server) exportFiles() vigil.ExportFiles {
	if s.exports == nil {
		if s.pg != nil {
			s.exports = s.pg.ExportFiles()
		} else {
			s.exports = exportdir.New(filepath.Join(s.opts.DataDir, ExportDirName))
		}
	}
	return s.exports
}

// registerMetrics registers the process's metrics and those of the parts
// that do not register their own.
func (s *Server) registerMetrics(context.Context) error {
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_audit_journal_syncs_total",
		Help: "Syncs of the audit journal (each makes the entries written before it durable).",
	}, func() float64 { return float64(s.auditor.Syncs()) }))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_audit_uncopied_entries",
		Help: "Audit entries durable in the journal, not yet copied to audit.db.",
	}, func() float64 { return float64(s.auditor.Uncopied()) }))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_webhook_deliveries_pending",
		Help: "Webhook deliveries queued and not yet delivered nor failed (due, in flight or waiting for a retry).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := s.webhooks.Pending(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_store_writer_lag_messages",
		Help: "Log messages not yet written to the store.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := s.log.Lag(ctx, ingest.WriterName)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
	return nil
}

// loadTLS loads or issues the server certificate (tlsConfig).
func (s *Server) loadTLS(context.Context) (err error) {
	s.tls, err = s.tlsConfig()
	return err
}

// buildAPI prepares the JSON API, the FHIR API and the dashboard with
// their authentication: the sign-in throttle and the redaction of
// attempted user names.
func (s *Server) buildAPI(ctx context.Context) (err error) {
	// Attempted user names of failed sign-ins are kept only redacted,
	// with a keyed hash under this node's key (auth.NameRedactor).
	if s.names, err = auth.LoadNameRedactor(filepath.Join(s.opts.DataDir, UsernameKeyFile)); err != nil {
		return err
	}
	s.lockout = &auth.Lockout{OnEvent: s.auditLockout}
	if s.clustered() {
		s.lockout.Store, s.lockout.Logger = s.pg, s.opts.Logger
	}
	opts := s.opts
	// The research key of de-identified exports (package deid), created on
	// first start like the user name key.
	researchKey, err := deid.LoadKey(filepath.Join(opts.DataDir, deid.KeyFile))
	if err != nil {
		return err
	}
	exempt := map[string]bool{}
	for _, id := range opts.ConsentExemptIntegrations {
		exempt[id] = true
	}
	reportZone := time.UTC
	if opts.ReportTimeZone != "" {
		reportZone, _ = time.LoadLocation(opts.ReportTimeZone) // checked by withDefaults
	}
	api := &vhttp.Server{Deps: gate.Deps{
		Store:    s.patients,
		Erasure:  s.erasure,
		Ingest:   s.ingest,
		Mappings: s.mappings,
		Gateway:  s.gateway,
		Auth: &auth.Authenticator{Users: s.store, Devices: s.store, Guard: s.lockout, SessionIdle: opts.SessionIdle,
			SecondFactor: s.store, AdminTOTPOptional: opts.AdminTOTPOptional},
		Auditor:        s.auditor,
		FailureAuditor: s.failures,
		BreakGlassTTL:  opts.BreakGlassTTL,
		Ready: map[string]gate.Pinger{"store": s.store, "log": s.logHealth, "audit": s.auditor, "disk": s.disk,
			"writer": &s.writerRun, "engine": engineHealth{&s.engineRun, &s.partRuns}},
		Space:              s.disk,
		ExportMaxBytes:     opts.ExportMaxBytes,
		ExportsPerCaller:   opts.ExportsPerCaller,
		BackfillBytes:      opts.BackfillBytes,
		Logger:             opts.Logger,
		Gatherer:           s.registry,
		Metrics:            s.registry,
		NewSecret:          newSecret,
		HashSecret:         auth.HashSecret,
		MaxBodyBytes:       opts.MaxBodyBytes,
		TokenTTL:           opts.TokenTTL,
		AdminReadsClinical: opts.AdminReadsClinical,
		Consents:           s.store,
		Monitoring:         s.store,
		ReportZone:         reportZone,
		Medications:        s.store,
		Adherence:          s.adherence(),
		ConsentExempt:      exempt,
		ResearchKey:        researchKey,
		Codes:              s.catalog,
		Version:            opts.Version,
		Exports:            s.exportFiles(),
		NodeID:             opts.NodeID,
		PublicURL:          opts.PublicURL,
		AttemptedNames:     s.names,
		AlertStore:         s.alerts,
		AuditLog:           s.auditor, // sees the entries still in the journal
		RuleConfigs:        s.configs,
		Webhooks:           s.webhooks,
		AllowHTTPWebhooks:  opts.WebhookAllowHTTP,
		AlertActions:       &alerting.Actions{Engine: s.engine, For: s.engineFor},
		Events:             &closingEvents{Events: s.hub, done: s.streamsDone},
		Messages:           &keys.Messages{MessageStore: s.store, Identity: s.store, Keys: s.patients.Keyring()},
		PublishEvent:       s.hub.Publish,
		Appointments:       s.store,
		TelevisitURL:       opts.TelevisitURL,
	}}
	if api.PublicURL == "" {
		api.PublicURL = s.URL() // the listener is bound: its port is known
	}
	if s.ca != nil {
		api.IssueDeviceCert = s.issueDeviceCert
	}
	if s.opts.OIDC != nil {
		p, err := oidc.New(ctx, *s.opts.OIDC)
		if err != nil {
			return err
		}
		api.OIDC = p
	}
	s.api = api
	return nil
}

// buildMQTT prepares the MQTT listener with the device registry restored
// from the main database, and lets the API ask it about devices.
func (s *Server) buildMQTT(ctx context.Context) error {
	mqttTLS := s.tls.Clone()
	if s.ca != nil {
		mqttTLS = mqtt.ClientCertTLSConfig(mqttTLS, s.ca.Pool())
	}
	s.statuses = &statusSaver{store: s.store, logger: s.opts.Logger}
	mqttIngest := *s.ingest
	mqttIngest.Devices = s.store
	s.mqtt = mqtt.NewServer(mqtt.Options{
		Ingest:         &mqttIngest,
		Gateway:        s.gateway, // given the listener's ingest
		Devices:        s.store,
		HashSecret:     auth.HashSecret,
		TLSConfig:      mqttTLS,
		Auditor:        s.auditor,
		FailureAuditor: s.failures,
		AttemptedNames: s.names,
		Logger:         s.opts.Logger,
		Status:         s.statuses,
		Templates:      s.mappings,
		Broadcaster:    s.broadcaster(),
		NodeID:         s.opts.NodeID,
	})
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        gate.OversizeUsernamesMetric,
		Help:        gate.OversizeUsernamesHelp,
		ConstLabels: prometheus.Labels{"transport": "mqtt"},
	}, func() float64 { return float64(s.mqtt.OversizeUsernames()) }))
	s.registerSafetyMetrics()
	if err := restoreStatuses(ctx, s.store, s.mqtt, s.opts.Logger); err != nil {
		return fmt.Errorf("restore device statuses: %w", err)
	}
	s.api.DeviceStatus = func(id string) (any, bool) { return s.mqtt.Status(id) }
	s.api.DeviceRevoked = func(id string) {
		s.devices.Forget(id)
		s.mqtt.Disconnect(id)
	}
	s.api.DeviceChanged = func(id string) {
		s.devices.Forget(id)
		s.mqtt.DeviceChanged(id)
	}
	return nil
}

// Values of Options.MLLPClientCert.
const (
	MLLPClientCertOptional = "optional"
	MLLPClientCertRequire  = "require"
)

// buildHL7 prepares the HL7 v2 MLLP listener, if it is on.
func (s *Server) buildHL7(context.Context) error {
	if s.mllpLn == nil {
		return nil
	}
	tlsConf := s.tls.Clone()
	if s.ca != nil {
		tlsConf = hl7.ClientCertTLSConfig(tlsConf, s.ca.Pool(), s.opts.MLLPClientCert == MLLPClientCertRequire)
	} else if s.opts.MLLPClientCert == MLLPClientCertRequire {
		return vigil.Errorf(vigil.EINVALID, "MLLP client certificates are required, but with a certificate of your own (--tls-cert) Vigil has no CA to verify them against")
	}
	zone := time.UTC
	if s.opts.MLLPTimeZone != "" {
		zone, _ = time.LoadLocation(s.opts.MLLPTimeZone) // checked by withDefaults
	}
	s.hl7 = hl7.NewServer(hl7.Options{
		Ingest:          s.ingest,
		FailureAuditor:  s.failures,
		Senders:         s.store,
		Patients:        s.patients,
		Devices:         s.store,
		Codes:           s.catalog,
		TLSConfig:       tlsConf,
		Logger:          s.opts.Logger,
		Zone:            zone,
		MaxConns:        s.opts.MLLPMaxConns,
		MaxMessageBytes: s.opts.MLLPMaxMessageBytes,
		IdleTimeout:     s.opts.MLLPIdleTimeout,
	})
	s.registry.MustRegister(s.hl7.Collectors()...)
	s.api.HL7SendersChanged = s.hl7.SendersChanged
	return nil
}

// buildHTTP prepares the HTTPS server of the API; Start serves it.
func (s *Server) buildHTTP(context.Context) error {
	s.http = &nethttp.Server{
		Handler:           s.api.Handler(),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
	}
	return nil
}

func newSecret(kind string) (string, []byte) {
	if kind == "device" {
		return auth.NewSecret(auth.SecretDevice)
	}
	return auth.NewSecret(auth.SecretUser)
}

// tlsConfig loads the user's certificate or issues one from the node's CA.
func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.opts.TLSCert != "" || s.opts.TLSKey != "" {
		if s.opts.TLSCert == "" || s.opts.TLSKey == "" {
			return nil, errors.New("a TLS certificate needs both its certificate and its key file")
		}
		cert, err := pki.LoadKeyPair(s.opts.TLSCert, s.opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate: %w", err)
		}
		return pki.ServerTLSConfig(cert), nil
	}
	dir := filepath.Join(s.opts.DataDir, "tls")
	ca, err := pki.LoadOrCreate(dir, time.Now)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	cert, err := ca.ServerCertificate(dir, s.opts.TLSHosts)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	s.caFile, s.ca = ca.CertFile(), ca
	s.opts.Announce("TLS: certificates are issued by Vigil's own CA; trust %s (SHA-256 fingerprint %s)", ca.CertFile(), pki.Fingerprint(ca.Cert()))
	return pki.ServerTLSConfig(cert), nil
}

// bootstrapAdmin creates the "admin" user on first start.
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	_, err := s.store.UserByUsername(ctx, "admin")
	if err == nil {
		if s.opts.AdminPassword != "" {
			// Not silently ignored: the password is only for the first start.
			s.opts.Announce("user admin exists already: VIGIL_ADMIN_PASSWORD only sets the password when admin is created, so it was not used; " +
				"to change admin's password, stop the server and run: VIGIL_NEW_PASSWORD=<new password> vigil admin reset-password --username admin --data <data directory>")
		}
		return nil
	}
	if vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return fmt.Errorf("look up admin user: %w", err)
	}
	pw := s.opts.AdminPassword
	generated := pw == ""
	if generated {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("generate admin password: %w", err)
		}
		pw = base64.RawURLEncoding.EncodeToString(b[:])
	} else if err := auth.CheckPasswordPolicy("admin", pw); err != nil {
		return fmt.Errorf("admin password from VIGIL_ADMIN_PASSWORD: %w", err)
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("hash admin password: %w", err)
	}
	if err := s.store.CreateUser(ctx, &vigil.User{Username: "admin", Role: vigil.RoleAdmin, PasswordHash: hash}); err != nil {
		return fmt.Errorf("create admin user: %w", err)
	}
	if generated {
		s.opts.Announce("created user admin with password %s (shown once; set VIGIL_ADMIN_PASSWORD to choose it)", pw)
	} else {
		s.opts.Announce("created user admin with the password from VIGIL_ADMIN_PASSWORD")
	}
	return nil
}

// listen binds the HTTPS, MQTT and MLLP listeners; Start serves them. New binds
// them before it creates anything, so that a start that cannot serve (an
// address in use) leaves nothing behind, above all not an admin whose
// one-time password was printed for nothing.
func (s *Server) listen(context.Context) error {
	ln, err := net.Listen("tcp", s.opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.HTTPAddr, err)
	}
	s.listener = ln
	for _, m := range []struct {
		addr string
		tls  bool
	}{{s.opts.MQTTAddr, true}, {s.opts.MQTTPlainAddr, false}} {
		if m.addr == "" || m.addr == "off" {
			continue
		}
		ln, err := net.Listen("tcp", m.addr)
		if err != nil {
			return fmt.Errorf("listen for MQTT on %s: %w", m.addr, err)
		}
		s.mqttLns = append(s.mqttLns, mqttListener{ln, m.tls})
	}
	if a := s.opts.MLLPAddr; a != "" && a != "off" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("listen for MLLP on %s: %w", a, err)
		}
		s.mllpLn = ln
	}
	return nil
}

// mqttListener is a bound MQTT listener, with TLS or plain TCP.
type mqttListener struct {
	net.Listener
	tls bool
}

// closeListeners closes the listeners of a node that is not started.
func (s *Server) closeListeners() {
	if s.listener != nil {
		s.listener.Close()
	}
	for _, ln := range s.mqttLns {
		ln.Close()
	}
	if s.mllpLn != nil {
		s.mllpLn.Close()
	}
}

// Start serves the listeners New bound, in the background, and starts the
// log→store writer, the rules engine and the sweepers.
func (s *Server) Start() error {
	if s.started {
		return errors.New("server already started")
	}
	s.started = true
	ln := s.listener
	wctx, cancel := context.WithCancel(context.Background())
	s.writerCancel = cancel
	// Live events and MQTT takeovers between nodes (decision 36), before
	// the writer and the engine publish and the listeners accept.
	if err := s.hub.Start(wctx); err != nil {
		cancel()
		return err
	}
	if err := s.mqtt.ListenTakeovers(wctx); err != nil {
		cancel()
		return err
	}
	// The writer and the engine run as long as the node: one that stops
	// with an error is logged, started again, and unready meanwhile.
	s.writerRun.name, s.writerRun.logger = "store writer", s.logger
	s.engineRun.name, s.engineRun.logger = "rules engine", s.logger
	s.writerDone = make(chan error, 1)
	go func() { s.writerDone <- s.writerRun.run(wctx, s.writer.Run) }()
	s.engineDone = make(chan error, 1)
	go func() { s.engineDone <- s.engineRun.run(wctx, s.runEngine) }()
	if s.partitioned() != nil {
		// Once per node, whatever happens to the engine's runs.
		s.aux.Go(func() { s.refreshErased(wctx) })
	}
	// Per node: the rule configurations' cache, the MQTT registry's
	// saves, this node's disk. The rest runs on one node at a time when
	// there are several (single, cluster.go; decision 34).
	s.aux.Go(func() { s.configs.Run(wctx) })
	s.aux.Go(func() { s.statuses.run(wctx) })
	s.aux.Go(func() { s.disk.run(wctx, diskCheckEvery) })
	s.single(wctx, "webhooks", func(ctx context.Context) { s.webhooks.Run(ctx) })
	s.single(wctx, "erasure", func(ctx context.Context) { s.erasure.Run(ctx, erasureEvery) })
	s.single(wctx, "retention", func(ctx context.Context) { s.retention.Run(ctx, s.opts.RetentionInterval) })
	s.single(wctx, "televisit-reminders", func(ctx context.Context) {
		rm := &reminders{store: s.store, webhooks: s.alerts, publish: s.hub.Publish, lead: s.opts.TelevisitReminderLead, now: time.Now, logger: s.logger}
		rm.run(ctx, televisitReminderEvery)
	})
	if s.pg != nil {
		s.single(wctx, "store-partitions", s.runPartitions)
	}
	s.sweepDone = make(chan struct{})
	go s.sweep(wctx)
	go func() {
		if err := s.http.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			s.logger.Error("https server stopped", "err", err)
		}
	}()
	for _, ln := range s.mqttLns {
		serve := s.mqtt.Serve
		if !ln.tls {
			serve = s.mqtt.ServeInsecure
		}
		go func() {
			if err := serve(ln.Listener); err != nil && !errors.Is(err, mqtt.ErrServerClosed) {
				s.logger.Error("mqtt listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	if s.mllpLn != nil {
		serve := s.hl7.Serve
		if s.opts.MLLPPlain {
			serve = s.hl7.ServeInsecure
		}
		go func() {
			if err := serve(s.mllpLn); err != nil && !errors.Is(err, hl7.ErrServerClosed) {
				s.logger.Error("mllp listener stopped", "addr", s.mllpLn.Addr().String(), "err", err)
			}
		}()
	}
	s.logger.Info("vigil serving", "addr", s.Addr(), "mqtt", s.MQTTAddrs(), "mllp", s.MLLPAddr(), "data", s.opts.DataDir)
	return nil
}

// MLLPAddr is the address HL7 v2 over MLLP listens on; "" if off.
func (s *Server) MLLPAddr() string {
	if s.mllpLn == nil {
		return ""
	}
	return s.mllpLn.Addr().String()
}

// HL7SendersChanged tells the MLLP listener that the registered HL7
// senders changed, so that the next message sees the change at once.
func (s *Server) HL7SendersChanged() {
	if s.hl7 != nil {
		s.hl7.SendersChanged()
	}
}

// MQTTAddrs lists the addresses MQTT listens on: TLS first, then plain TCP
// if enabled.
func (s *Server) MQTTAddrs() []string {
	out := make([]string, len(s.mqttLns))
	for i, ln := range s.mqttLns {
		out[i] = ln.Addr().String()
	}
	return out
}

// Addr is the address the API listens on (useful with port 0).
func (s *Server) Addr() string {
	if s.listener == nil {
		return s.opts.HTTPAddr
	}
	return s.listener.Addr().String()
}

// URL is the API's base URL for a client on this machine.
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.Addr())
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// UsernameKeyFile is the file in the data directory holding the node's
// key for the keyed hash of attempted user names (auth.NameRedactor):
// 32 random bytes, 0600, created on first start.
const UsernameKeyFile = "username-key"

// CheckPublicURL checks a public base URL and returns it without a
// trailing slash: an absolute https URL with a host, and no user
// information, query or fragment (a path prefix is allowed).
func CheckPublicURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("public URL %q: want an https URL such as https://vigil.example.org:8443", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// CAFile is the certificate file of the node's own CA ("" with a
// user-supplied certificate).
func (s *Server) CAFile() string { return s.caFile }

// Store is the node's store, for tools that run beside the server; its
// PatientStore seals identity (keys.Store).
func (s *Server) Store() vigil.Store { return s.patients }

// Messages is the node's store of secure messages, sealed (keys.Messages).
func (s *Server) Messages() vigil.MessageStore { return s.api.Messages }

// Erasure is the node's erasure service.
func (s *Server) Erasure() *erasure.Service { return s.erasure }

// Retention is the node's retention sweeper.
func (s *Server) Retention() *retention.Sweeper { return s.retention }

// AuditLog reads the node's audit log: the entries in its database
// (audit.db) and those still in its journal.
func (s *Server) AuditLog() vigil.AuditReader { return s.auditor }

// AlertStore is the node's store of alerts and webhooks (a database of
// its own), for tools that run beside the server.
func (s *Server) AlertStore() vigil.AlertWebhookStore { return s.alerts }

// erasedSet is a set of erased patients' ids, safe for concurrent use.
type erasedSet struct {
	mu sync.RWMutex
	m  map[string]bool
}

func (e *erasedSet) add(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]bool)
	}
	e.m[id] = true
}

func (e *erasedSet) has(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.m[id]
}

// drained returns once the store writer and the rules engine have
// processed everything the log held when it was called.
func (s *Server) drained(ctx context.Context) error {
	target, err := s.log.LastSeq(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{ingest.WriterName, alerting.EngineName} {
		for {
			if s.consumed(ctx, name, target) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for %s to process the log: %w", name, ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// WaitStored blocks until the store holds everything the log had
// acknowledged when it was called, or ctx ends.
func (s *Server) WaitStored(ctx context.Context) error {
	return s.waitConsumed(ctx, ingest.WriterName)
}

// WaitEvaluated blocks until the rules engine has evaluated everything the
// log had acknowledged when it was called, or ctx ends.
func (s *Server) WaitEvaluated(ctx context.Context) error {
	return s.waitConsumed(ctx, alerting.EngineName)
}

// Lags returns how many log messages the store writer and the rules engine
// have not yet processed (each message is one acknowledged request's
// batch). The counts come from the log's consumer state.
func (s *Server) Lags(ctx context.Context) (store, engine uint64, err error) {
	if store, err = s.log.Lag(ctx, ingest.WriterName); err != nil {
		return 0, 0, err
	}
	if engine, err = s.log.Lag(ctx, alerting.EngineName); err != nil {
		return 0, 0, err
	}
	return store, engine, nil
}

// waitConsumed blocks until consumer name has acknowledged every message
// the log held when it was called, or ctx ends.
func (s *Server) waitConsumed(ctx context.Context, name string) error {
	target, err := s.log.LastSeq(ctx)
	if err != nil {
		return err
	}
	for {
		if s.consumed(ctx, name, target) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Shutdown stops accepting connections, lets requests in flight finish
// (each is acknowledged only once durable), waits for the writer to store
// what the log holds, and closes the log and store. ctx bounds the wait;
// whatever the writer has not stored by then stays in the log and is stored
// on the next start. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		var errs []error
		if !s.started {
			s.closeListeners()
		} else {
			if len(s.mqttLns) > 0 {
				if err := s.mqtt.Shutdown(ctx); err != nil {
					errs = append(errs, fmt.Errorf("stop mqtt: %w", err))
				}
			}
			if s.hl7 != nil {
				if err := s.hl7.Shutdown(ctx); err != nil {
					errs = append(errs, fmt.Errorf("stop mllp: %w", err))
				}
			}
			close(s.streamsDone)
			if err := s.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop https: %w", err))
			}
			s.api.Close() // running FHIR exports stop; clients start them again
			if err := s.WaitStored(ctx); err != nil {
				s.logger.Warn("shutdown before the store caught up with the log; the rest is stored on next start", "err", err)
			}
			s.writerCancel()
			<-s.writerDone
			<-s.engineDone
			s.aux.Wait()
			if err := s.statuses.flush(ctx); err != nil {
				s.logger.Warn("save device statuses on shutdown", "err", err)
			}
			if err := s.engine.Checkpoint(ctx); err != nil {
				s.logger.Warn("alerting checkpoint on shutdown failed; the next start replays the log since the last one", "err", err)
			}
			<-s.sweepDone
			if err := s.failures.FlushNow(ctx); err != nil {
				s.logger.Warn("auditing suppressed unauthenticated failures on shutdown", "err", err)
			}
		}
		errs = append(errs, s.closeStorage(ctx))
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

func (s *Server) closeStorage(ctx context.Context) error {
	var errs []error
	s.stopCheckpoints()
	if s.auditor != nil {
		if err := s.auditor.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close audit log: %w", err))
		}
		s.finalCheckpoint()
	}
	if s.log != nil {
		if err := s.log.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close log: %w", err))
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
	}
	if s.alerts != nil {
		if err := s.alerts.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close alert store: %w", err))
		}
	}
	if s.auditDB != nil {
		if err := s.auditDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close audit store: %w", err))
		}
	}
	if err := s.dirLock.Unlock(); err != nil {
		errs = append(errs, fmt.Errorf("unlock data directory: %w", err))
	}
	return errors.Join(errs...)
}

// sweepInterval is how often time-based access ends are recorded.
const sweepInterval = 15 * time.Second

// OpenAuditLog opens the audit log of data directory dir as a node keeps
// it, for the node and for tools that work on a stopped node's directory:
// the database AuditDB, into which the chain of a data directory from
// before is first copied from main (the main store's EarlierAudit), and a
// Recorder with the journal AuditJournalDir, which copies into it what an
// earlier run left in the journal. opts.Journal is set here. The caller
// closes the Recorder, then the store.
//
// The audit log lives in a database file of its own: every commit to a
// SQLite database empties its readers' page caches, and the audit log's
// commits would make every readings query read its pages again.
func OpenAuditLog(ctx context.Context, dir string, main vigil.AuditReader, opts audit.RecorderOptions) (*sqlite.AuditStore, *audit.Recorder, error) {
	db, err := sqlite.OpenAudit(ctx, filepath.Join(dir, AuditDB))
	if err != nil {
		return nil, nil, fmt.Errorf("open audit store: %w", err)
	}
	r, err := recordInto(ctx, dir, db, main, opts)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, r, nil
}

// recordInto returns the Recorder of data directory dir's audit journal
// over db, having copied into db the chain of main (nil: none).
func recordInto(ctx context.Context, dir string, db vigil.AuditStore, main vigil.AuditReader, opts audit.RecorderOptions) (*audit.Recorder, error) {
	if main != nil {
		if n, err := audit.Copy(ctx, main, db); err != nil {
			return nil, err
		} else if n > 0 && opts.Logger != nil {
			opts.Logger.Info("audit log moved to its own database", "entries", n, "file", AuditDB)
		}
	}
	opts.Journal = filepath.Join(dir, AuditJournalDir)
	r, err := audit.NewRecorder(ctx, db, opts)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	return r, nil
}

// openAuditLog opens the node's audit log: OpenAuditLog, or with
// PostgreSQL the node's chain in the audit store there (several nodes share
// the table, each writing a chain of its own, its node ID's; decision 0035)
// and the journal in the data directory. A second process with the same
// node ID on the database is refused (postgres.AuditStore.LockWriter).
// The chain of the single node from before chains is adopted by the node
// whose data directory holds its checkpoints (adoptAuditChain).
func (s *Server) openAuditLog(ctx context.Context, opts audit.RecorderOptions, signer audit.Signer) (auditStore, *audit.Recorder, error) {
	if s.opts.Store == "" {
		db, r, err := OpenAuditLog(ctx, s.opts.DataDir, s.earlier, opts)
		if err != nil {
			return nil, nil, err // not a nil *sqlite.AuditStore in a non-nil interface
		}
		return db, r, nil
	}
	all, err := postgres.OpenAudit(ctx, s.opts.Store)
	if err != nil {
		return nil, nil, fmt.Errorf("open audit store: %w", err)
	}
	db := all.Chain(s.auditChain())
	if err := db.LockWriter(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	if err := s.adoptAuditChain(ctx, db, signer); err != nil {
		db.Close()
		return nil, nil, err
	}
	r, err := recordInto(ctx, s.opts.DataDir, db, nil, opts)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, r, nil
}

// auditChain returns the name of the node's audit chain: its node ID with
// PostgreSQL, which several nodes share; "" with SQLite, one node's alone.
func (s *Server) auditChain() string {
	if s.opts.Store == "" {
		return ""
	}
	return s.opts.NodeID
}

// adoptAuditChain makes the chain a single node wrote before chains were
// kept per node (node "") this node's, if this node wrote it: the last
// checkpoint in its own checkpoint file that names no node and is signed
// by its key must name an entry (or the start after retention) of that
// chain. A node with no such checkpoint (a new one, or one already
// upgraded) adopts nothing.
func (s *Server) adoptAuditChain(ctx context.Context, db *postgres.AuditStore, signer audit.Signer) error {
	cs, err := audit.ReadCheckpoints(filepath.Join(s.opts.DataDir, AuditCheckpointFile))
	if err != nil {
		return nil // checkCheckpoints reports a damaged file
	}
	var last *audit.Checkpoint
	for i := range cs {
		if c := cs[i]; c.Node == "" && c.Seq > 0 && c.Check(signer.Public()) == nil && (last == nil || c.Seq > last.Seq) {
			last = &cs[i]
		}
	}
	if last == nil {
		return nil
	}
	n, err := db.AdoptAuditChain(ctx, last.Seq, last.Hash)
	if err != nil {
		return err
	}
	if n > 0 {
		s.logger.Info("audit chain from before adopted as this node's", "node", s.opts.NodeID, "entries", n)
	}
	return nil
}

// Values of Options.AuditSync.
const (
	// AuditSyncRequest: a response leaves once its audit entry is on
	// disk; concurrent requests share the syncs.
	AuditSyncRequest = "request"
	// AuditSyncInterval: a response leaves once its audit entry is
	// written to the journal (in the operating system's cache: it
	// survives a crash of the process, not of the machine), which is
	// synced every 10 ms.
	AuditSyncInterval = "interval"
)

// Files of the databases in the data directory, each opened as its own
// type (sqlite.Store, sqlite.AlertStore, sqlite.AuditStore).
const (
	MainDB          = "vigil.db"      // the main store
	AlertsDB        = "alerts.db"     // alerts, the rules engine's progress, webhooks
	AuditDB         = "audit.db"      // the audit store
	AuditJournalDir = "audit-journal" // its write-ahead journal
)

// sweep ends expired break-glass grants and sign-in lockouts, auditing each
// end, until ctx ends.
func (s *Server) sweep(ctx context.Context) {
	defer close(s.sweepDone)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.lockout.Sweep(ctx)
		if err := s.failures.Flush(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("auditing suppressed unauthenticated failures", "err", err)
		}
		if err := s.api.EndExpiredBreakGlass(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("ending expired break-glass access", "err", err)
		}
	}
}

// auditLockout records the start and end of a sign-in lockout.
func (s *Server) auditLockout(ctx context.Context, key string, start bool, until time.Time) {
	e := vigil.AuditEntry{Time: time.Now().UTC(), Action: vigil.AuditLockoutEnd, Resource: "sign-in", Outcome: vigil.AuditSuccess}
	if start {
		e.Action, e.Outcome, e.Detail = vigil.AuditLockout, vigil.AuditDenied, "locked until "+until.UTC().Format(time.RFC3339)
	}
	if name, ok := strings.CutPrefix(key, "user:"); ok {
		e.ActorName = s.names.Redact(name) // an attempted name, not necessarily a user's
		if start {
			e.Detail = "sign-ins throttled: next attempt from an unknown address at " + until.UTC().Format(time.RFC3339)
		}
	} else {
		e.Remote = strings.TrimPrefix(key, "addr:")
	}
	if err := s.auditor.Record(ctx, e); err != nil {
		s.logger.Error("audit lockout", "err", err)
	}
}

// issueDeviceCert issues a device client certificate from the node's CA.
func (s *Server) issueDeviceCert(deviceID string, validity time.Duration) (certPEM, keyPEM, caPEM []byte, err error) {
	certPEM, keyPEM, err = s.ca.IssueClient(deviceID, validity)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("issue device certificate: %w", err)
	}
	caPEM, err = os.ReadFile(s.ca.CertFile())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read CA certificate: %w", err)
	}
	return certPEM, keyPEM, caPEM, nil
}

// closingEvents ends every subscription when done is closed.
type closingEvents struct {
	vigil.Events
	done <-chan struct{}
}

func (c *closingEvents) Subscribe(ctx context.Context) (<-chan vigil.Event, func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	ch, end := c.Events.Subscribe(ctx)
	return ch, func() { end(); cancel() }
}
