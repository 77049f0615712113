package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/vigil-health/vigil/adherence"
	"github.com/vigil-health/vigil/alerting"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/hl7"
	"github.com/vigil-health/vigil/oidc"
	"github.com/vigil-health/vigil/server"
)

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "Run Vigil: the HTTPS API, the durable log (NATS JetStream embedded) and the store (SQLite),\nall kept in one data directory; or the store in PostgreSQL (--store).", stderr)
	d := serveDefaults()
	var (
		o         server.Options
		tlsHosts  string
		logLevel  string
		logFormat string
		maxBody   int64
		shutdown  time.Duration
		// alertRearm is the flag's value: 0 turns the window off
		alertRearm time.Duration
		exportMax  string
		// consentExempt is the flag's comma-separated list of user ids
		consentExempt string
	)
	fs.StringVar(&o.DataDir, "data", "./vigil-data", "data directory: store, log, certificates")
	fs.StringVar(&o.Store, "store", d.Store, "where the stores are: empty for SQLite in the data directory, or a PostgreSQL connection URL, postgres://user@host:5432/db?sslmode=verify-full (prefer the environment variable, which keeps the password out of the process list); see docs/operations.md")
	fs.DurationVar(&o.StoreRetention, "store-retention", d.StoreRetention, "with PostgreSQL, how long readings are kept: weekly partitions wholly older are dropped; 0 keeps every reading")
	fs.StringVar(&o.HTTPAddr, "http", ":8443", "HTTPS listen address")
	fs.StringVar(&o.PublicURL, "public-url", "", "base URL clients reach this server at, such as https://vigil.example.org:8443; links that carry tokens (FHIR paging, export files) are built from it, never from a request's Host header; default: https:// and the --http address (localhost for all interfaces)")
	fs.StringVar(&o.MQTTAddr, "mqtt", ":8883", `MQTT over TLS listen address ("off" disables MQTT)`)
	fs.StringVar(&o.MQTTPlainAddr, "mqtt-plain", "", "plain-TCP MQTT listen address; off unless set (devices' tokens then cross the network unencrypted)")
	fs.StringVar(&o.MLLPAddr, "mllp", ":2575", `HL7 v2 over MLLP listen address, for bedside monitors and device gateways ("off" disables it)`)
	mllpTLS := fs.Bool("mllp-tls", true, "serve MLLP over TLS with the node's certificate; false serves plain TCP (HL7 messages, patient data among them, then cross the network unencrypted: only on a private link)")
	fs.StringVar(&o.MLLPClientCert, "mllp-client-cert", server.MLLPClientCertOptional, `MLLP client certificates issued by the node's CA: "optional" (verified when a sender presents one) or "require"`)
	fs.StringVar(&o.MLLPTimeZone, "mllp-time-zone", d.MLLPTimeZone, "IANA time zone of HL7 times sent without an offset (e.g. Europe/Paris)")
	fs.StringVar(&o.ReportTimeZone, "report-time-zone", "", "IANA time zone of the remote monitoring report's calendar days and months (e.g. America/Chicago; default UTC)")
	fs.IntVar(&o.MLLPMaxConns, "mllp-max-conns", d.MLLPMaxConns, "most MLLP connections at once; more are closed at once")
	fs.IntVar(&o.MLLPMaxMessageBytes, "mllp-max-message", d.MLLPMaxMessageBytes, "largest HL7 message in bytes; larger ones are answered AR")
	fs.DurationVar(&o.MLLPIdleTimeout, "mllp-idle-timeout", d.MLLPIdleTimeout, "an MLLP connection that sends no message for this long is closed")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file (PEM); default: issued by Vigil's own CA in <data>/tls")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key file (PEM), with --tls-cert")
	fs.StringVar(&tlsHosts, "tls-hosts", "", "extra host names or IP addresses, comma-separated, for the generated certificate")
	fs.StringVar(&o.AdminPassword, "admin-password", "", "password of the admin user created on first start (prefer the environment variable); random and printed once if unset")
	fs.BoolVar(&o.AdminReadsClinical, "admin-reads-clinical", false, "let admins read patients' clinical data (readings); admins always manage demographics")
	fs.BoolVar(&o.WebhookAllowHTTP, "webhook-allow-http", false, "allow alert webhooks to plain http URLs (they carry patient data; https only by default)")
	fs.StringVar(&o.TelevisitURL, "televisit-url", "", "template of televisit video links, e.g. 'https://meet.example.org/vigil-{{id}}': {{id}} becomes the appointment's unguessable room, never patient identity; empty: joining a televisit is off")
	fs.DurationVar(&o.TelevisitReminderLead, "televisit-reminder-lead", server.DefaultTelevisitReminderLead, "how long before a televisit starts its reminder goes out on the event stream")
	fs.DurationVar(&alertRearm, "alert-rearm", d.AlertRearm, "re-arm window of alerts: a condition that clears and returns within it re-opens the same alert (one more episode) instead of opening another; 0 turns it off")
	fs.DurationVar(&o.DoseWindow, "dose-window", adherence.DefaultWindow, "a medication dose taken within this long of its scheduled time counts as on time")
	fs.DurationVar(&o.DoseGrace, "dose-grace", adherence.DefaultGrace, "a scheduled medication dose not taken this long after its time raises a low-priority missed-dose alert")
	fs.DurationVar(&o.SessionIdle, "session-idle", d.SessionIdle, "sign-in sessions end after this long unused")
	fs.DurationVar(&o.BreakGlassTTL, "break-glass-ttl", d.BreakGlassTTL, "longest break-glass access to a patient outside one's teams")
	fs.StringVar(&consentExempt, "consent-exempt-integration", "", "user ids, comma-separated, of integrations that see every patient without their sharing consent: systems of the site's own care such as its EHR interface; every other integration sees only the patients who consented to it")
	fs.StringVar(&o.AuditSync, "audit-sync", d.AuditSync, `when a response that reads or changes patient data may leave: "request", once its audit entry is on disk; "interval", once it is written to the audit journal (it survives a crash of Vigil, not a power cut; the journal is synced every 10 ms)`)
	fs.IntVar(&o.AuditFailuresPerAddr, "audit-failures-per-addr", d.AuditFailuresPerAddr, "unauthenticated failures (bad credentials, failed sign-ins, refused MQTT CONNECTs) audited one by one per client address and --audit-failure-interval; the rest are counted in one entry")
	fs.DurationVar(&o.AuditFailureInterval, "audit-failure-interval", d.AuditFailureInterval, "interval of --audit-failures-per-addr")
	fs.DurationVar(&o.AuditCheckpointInterval, "audit-checkpoint-interval", d.AuditCheckpointInterval, "how often the head of the audit chain is signed and appended to <data>/"+server.AuditCheckpointFile+" (also at start and shutdown)")
	fs.StringVar(&o.AuditCheckpointCopy, "audit-checkpoint-copy", "", "a file on other storage that also gets every signed audit checkpoint, out of reach of whoever can rewrite the data directory")
	fs.BoolVar(&o.AuditAcceptDamage, "audit-accept-damage", false, "start although the audit log is damaged or behind its last signed checkpoint (refused otherwise): the damage is logged, audited and a damaged journal is set aside")
	fs.StringVar(&o.NATSURL, "nats-url", "", "external NATS servers for the durable log, every server of the cluster, comma-separated (nats://a:4222,nats://b:4222,nats://c:4222); default: embedded in-process, no port")
	fs.StringVar(&o.NodeID, "node-id", "", "this node's name among several sharing one PostgreSQL store and NATS cluster: 1 to 64 of A-Z a-z 0-9 _ -; default the host name")
	fs.IntVar(&o.Partitions, "partitions", 0, "how many partitions the log divides patients into, each evaluated by one node at a time: 1 with the embedded log, default 16 with --nats-url; fixed once the stream exists")
	fs.IntVar(&o.NATSReplicas, "nats-replicas", 1, "how many NATS servers hold each write of the durable log before a sender is acknowledged: 1 to 5, not more than --nats-url lists; 3 on a 3-server cluster")
	fs.DurationVar(&o.LogMaxAge, "log-max-age", d.LogMaxAge, "how long the durable log keeps readings after they are stored")
	fs.StringVar(&o.KEKFile, "kek-file", "", "key-encryption key file that wraps each patient's data key (created 0600 on first start; refused if group or others may read it); keep a copy apart from backups; default <data>/"+server.KEKFileName)
	fs.Var(period{&o.ErasureMinRetention}, "erasure-min-retention", `refuse to erase a patient whose records (creation or last reading) are younger than this, e.g. "10y"; 0: no minimum`)
	fs.Var(period{&o.Retention.Readings}, "retain-readings", `delete readings measured longer ago than this, e.g. "7y" or "90d"; 0 keeps them for ever`)
	fs.Var(period{&o.Retention.Alerts}, "retain-alerts", `delete resolved alerts last updated longer ago than this; 0 keeps them for ever`)
	fs.Var(period{&o.Retention.Quarantine}, "retain-quarantine", `delete quarantined input received longer ago than this; 0 keeps it for ever`)
	fs.Var(period{&o.Retention.Audit}, "retain-audit", `delete audit entries up to the newest signed audit checkpoint older than this, so that the log stays verifiable from that checkpoint; 0 keeps them for ever`)
	fs.DurationVar(&o.RetentionInterval, "retention-interval", time.Hour, "how often expired data is looked for and deleted, in batches")
	fs.StringVar(&o.CatalogFile, "catalog", "", "file of extra codes and units merged over the built-in catalogue")
	fs.StringVar(&o.DiskLowWatermark, "disk-low-watermark", d.DiskLowWatermark, `free space of the data directory's disk (a size such as "1GiB", or a percentage such as "5%") below which exports are refused, loudly logged and shown in /metrics and /readyz; readings are still taken; "0" turns it off`)
	fs.StringVar(&exportMax, "export-max-bytes", fmt.Sprintf("%dGiB", d.ExportMaxBytes>>30), "most space the files of FHIR bulk exports may take in <data>/fhir-export (in the database with --store postgres://), all callers together")
	fs.IntVar(&o.ExportsPerCaller, "exports-per-caller", d.ExportsPerCaller, "most FHIR bulk exports one caller may keep (running or finished) until it deletes them or they expire (24 h)")
	fs.Int64Var(&o.BackfillBytes, "backfill-bytes", d.BackfillBytes, "bodies of POST /api/v1/readings larger than this (in bytes) are backfills, refused while the disk is below --disk-low-watermark")
	fs.Int64Var(&maxBody, "max-body", d.MaxBodyBytes, "largest request body in bytes")
	fs.DurationVar(&o.MaxFuture, "max-future", d.MaxFuture, "how far ahead of the server clock a reading's time may be")
	fs.DurationVar(&o.TokenTTL, "token-ttl", d.TokenTTL, "lifetime of sign-in tokens")
	fs.DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	adminTOTP := fs.Bool("admin-totp", true, "admins need a TOTP second factor, enrolled at their first sign-in; false only for a demo")
	var oc oidc.Config
	fs.StringVar(&oc.Issuer, "oidc-issuer", "", "issuer URL of an OpenID Connect provider staff sign in at (GET /auth/oidc/login); off if unset")
	fs.StringVar(&oc.ClientID, "oidc-client-id", "", "Vigil's client id at the OpenID Connect provider")
	fs.StringVar(&oc.ClientSecret, "oidc-client-secret", "", "Vigil's client secret at the OpenID Connect provider (prefer the environment variable)")
	fs.StringVar(&oc.RedirectURL, "oidc-redirect-url", "", "Vigil's callback as browsers reach it, registered at the provider: https://<host>/auth/oidc/callback")
	fs.StringVar(&oc.RoleClaim, "oidc-role-claim", oidc.DefaultRoleClaim, "ID token claim holding the Vigil role (admin or clinician)")
	fs.StringVar(&oc.TeamsClaim, "oidc-teams-claim", oidc.DefaultTeamsClaim, "ID token claim holding the names of the user's care teams")
	fs.StringVar(&oc.UsernameClaim, "oidc-username-claim", oidc.DefaultUsernameClaim, "ID token claim naming the user")
	fs.DurationVar(&oc.SessionTTL, "oidc-session-ttl", oidc.DefaultSessionTTL, "lifetime of sessions started at the provider; a user disabled there keeps a session at most this long")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if err := bus.CheckReplicas(o.NATSURL, o.NATSReplicas); err != nil {
		return usageError(fmt.Errorf("--nats-replicas: %w", err))
	}
	var err error
	o.MaxBodyBytes = maxBody
	o.MLLPPlain = !*mllpTLS
	o.AdminTOTPOptional = !*adminTOTP
	if oc.Issuer != "" {
		o.OIDC = &oc
	}
	o.AlertRearm = alertRearm
	if alertRearm == 0 {
		o.AlertRearm = -1 // off
	}
	if o.ExportMaxBytes, err = server.ParseSize(exportMax); err != nil || o.ExportMaxBytes <= 0 {
		return usageError(fmt.Errorf("--export-max-bytes: want a positive size such as 4GiB, not %q", exportMax))
	}
	if _, err := server.ParseWatermark(o.DiskLowWatermark); err != nil && o.DiskLowWatermark != "0" {
		return usageError(fmt.Errorf("--disk-low-watermark: %w", err))
	}
	if o.PublicURL != "" {
		if o.PublicURL, err = server.CheckPublicURL(o.PublicURL); err != nil {
			return usageError(fmt.Errorf("--public-url: %w", err))
		}
	}
	for _, h := range strings.Split(tlsHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			o.TLSHosts = append(o.TLSHosts, h)
		}
	}
	for _, id := range strings.Split(consentExempt, ",") {
		if id = strings.TrimSpace(id); id != "" {
			o.ConsentExemptIntegrations = append(o.ConsentExemptIntegrations, id)
		}
	}
	logger, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	o.Logger = logger
	o.Version = version
	o.Announce = func(format string, args ...any) { fmt.Fprintf(stderr, "vigil: "+format+"\n", args...) }

	srv, err := server.New(ctx, o)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	fmt.Fprintf(stderr, "vigil: listening on %s (data in %s)\n", srv.URL(), o.DataDir)
	for _, a := range srv.MQTTAddrs() {
		fmt.Fprintf(stderr, "vigil: MQTT listening on %s\n", a)
	}
	if a := srv.MLLPAddr(); a != "" {
		mode := "TLS"
		if o.MLLPPlain {
			mode = "plain TCP"
		}
		fmt.Fprintf(stderr, "vigil: HL7 v2 over MLLP (%s) listening on %s\n", mode, a)
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "vigil: shutting down: finishing requests in flight and storing what the log holds")
	sctx, cancel := context.WithTimeout(context.Background(), shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(stderr, "vigil: stopped")
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// usageError turns a flag parsing error into errUsage (already printed by
// the flag package) or passes on --help.
func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}

// serveDefaults are the options vigil serve's flags default to, in one
// place: vigil demo starts from them too.
func serveDefaults() server.Options {
	return server.Options{
		AlertRearm:              alerting.DefaultRearm,
		SessionIdle:             30 * time.Minute,
		BreakGlassTTL:           time.Hour,
		AuditSync:               server.AuditSyncRequest,
		AuditFailuresPerAddr:    10,
		AuditFailureInterval:    time.Minute,
		AuditCheckpointInterval: time.Minute,
		LogMaxAge:               7 * 24 * time.Hour,
		DiskLowWatermark:        server.DefaultDiskLowWatermark,
		ExportMaxBytes:          4 << 30,
		ExportsPerCaller:        5,
		BackfillBytes:           64 << 10,
		MaxBodyBytes:            1 << 20,
		MaxFuture:               5 * time.Minute,
		TokenTTL:                12 * time.Hour,
		MLLPTimeZone:            "UTC",
		MLLPMaxConns:            hl7.DefaultMaxConns,
		MLLPMaxMessageBytes:     hl7.DefaultMaxMessageBytes,
		MLLPIdleTimeout:         hl7.DefaultIdleTimeout,
	}
}
