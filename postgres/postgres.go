// Package postgres implements Vigil's stores on PostgreSQL (github.com/jackc/pgx/v5):
// vigil.Store, vigil.AlertWebhookStore and vigil.AuditStore, each a type of
// its own, so that passing one where another is wanted does not compile.
//
// One database (and one schema: the connection's search_path) holds the
// tables of all three; every Open brings the whole schema up to date, so
// the three may also be given databases of their own (separate DSNs). The
// schema is built for a time series at scale: readings are range-partitioned
// by effective time in partitions of PartitionWidth, created ahead and on
// demand and dropped by retention (MaintainPartitions), and written in
// batches with COPY into a staging table and one INSERT … ON CONFLICT DO
// NOTHING (WriteBatches). See docs/decisions/0024-postgresql-store.md.
//
// A write method that returns nil has committed; with PostgreSQL's default
// synchronous_commit its data survive a crash of the server. Times are stored
// as timestamptz (microseconds; finer precision is truncated) and returned
// in UTC. All methods are safe for concurrent use, also by several processes
// (nodes) on the same database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/vigil-health/vigil"
)

// Store is the main store: identity, devices, users, teams, readings,
// quarantine, rule configurations — vigil.Store on PostgreSQL.
type Store struct {
	db
	parts *partitions
}

// AlertStore is the alerts store: alerts, their events, the rules engine's
// checkpoint, webhooks and their deliveries — vigil.AlertWebhookStore.
type AlertStore struct{ db }

// AuditStore is the audit store: the audit log — vigil.AuditStore —, one
// hash chain per node, a value bound to one of them (Chain).
type AuditStore struct {
	db
	node   string    // the chain written and scanned; "" until Chain
	writer *pgx.Conn // holds the writer's lock (LockWriter); nil if not taken
}

var (
	_ vigil.Store             = (*Store)(nil)
	_ vigil.AlertWebhookStore = (*AlertStore)(nil)
	_ vigil.AuditStore        = (*AuditStore)(nil)
)

// db is a pool of connections to one database.
type db struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// IsDSN reports whether s names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than something else, such as a file path.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open connects to the database named by dsn (a postgres:// URL, or a
// key=value connection string, with libpq's parameters), brings its schema up to
// date (Migrate) and returns the main store. The pool's size is the DSN's
// pool_max_conns, by default max(8, 2 × GOMAXPROCS).
func Open(ctx context.Context, dsn string) (*Store, error) {
	d, err := open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &Store{db: d, parts: newPartitions()}, nil
}

// OpenAlerts opens the alerts store as Open opens the main store.
func OpenAlerts(ctx context.Context, dsn string) (*AlertStore, error) {
	d, err := open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &AlertStore{d}, nil
}

// OpenAudit opens the audit store as Open opens the main store.
func OpenAudit(ctx context.Context, dsn string) (*AuditStore, error) {
	d, err := open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &AuditStore{db: d}, nil
}

func open(ctx context.Context, dsn string) (db, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The message of a parse error may hold the password: not wrapped.
		return db{}, fmt.Errorf("open postgres store: %w", vigil.Errorf(vigil.EINVALID, "the PostgreSQL connection string cannot be parsed"))
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(max(8, 2*runtime.GOMAXPROCS(0)))
	}
	// JIT compilation costs tens of milliseconds per statement that the
	// planner thinks large, which the writer's statements on a staging
	// table without statistics always are; Vigil's queries are short.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "vigil"
	}
	// Times come back in UTC, as the stores' contract says.
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return db{}, fmt.Errorf("open postgres store: %w", err)
	}
	d := db{pool: pool, now: time.Now}
	if err := d.migrate(ctx); err != nil {
		pool.Close()
		return db{}, fmt.Errorf("open postgres store: %w", err)
	}
	return d, nil
}

// writerLock is the SQL of the advisory lock key of the writer of the
// chain of node $1 (a bigint, so that two node IDs practically never share
// one).
const writerLock = "hashtextextended(current_schema() || '/vigil/audit-writer/' || $1, 0)"

// LockWriter makes s the only writer of its node's chain among every
// process sharing the database: it takes an advisory lock keyed by the
// node ID on a connection of its own and holds it until Close. A node's
// audit journal assumes it is its chain's only writer, so a second process
// with the same node ID on the same database is refused (ECONFLICT) rather
// than left to append entries the first refuses; nodes with other IDs
// write chains of their own and are not affected.
func (s *AuditStore) LockWriter(ctx context.Context) error {
	if s.writer != nil {
		return nil
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("lock audit writer: %w", err)
	}
	conn := c.Hijack() // ours until Close: the lock lives as long as the session
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+writerLock+")", s.node).Scan(&ok); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("lock audit writer: %w", err)
	}
	if !ok {
		conn.Close(ctx)
		return fmt.Errorf("lock audit writer: %w", vigil.Errorf(vigil.ECONFLICT,
			"another Vigil node with node ID %q writes its audit chain in this database: give each node its own --node-id", s.node))
	}
	s.writer = conn
	return nil
}

// Close closes the store (the connections its views share, see Chain),
// releasing the writer's lock first, so that a node started right after
// this one stops finds it free (a closed connection's locks are released
// only once its server process has gone).
func (s *AuditStore) Close() error {
	if s.writer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.writer.Exec(ctx, "SELECT pg_advisory_unlock("+writerLock+")", s.node)
		s.writer.Close(ctx)
		cancel()
		s.writer = nil
	}
	return s.db.Close()
}

// Ping reports whether the database can be reached.
func (s *db) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (s *db) Close() error {
	s.pool.Close()
	return nil
}

// Retryable SQLSTATEs: a deadlock or serialization failure between
// concurrent writers (the transaction is rolled back whole; running it
// again is safe).
const (
	sqlDeadlock      = "40P01"
	sqlSerialization = "40001"
	sqlUnique        = "23505"
	sqlForeignKey    = "23503"
	sqlNoPartition   = "23514" // check_violation: also "no partition of relation found for row"
	maxAttempts      = 5
)

// write runs fn in a transaction, committing if fn returns nil and rolling
// back otherwise. A deadlock or serialization failure runs it again, up to
// maxAttempts times.
func (s *db) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if err == nil {
			return nil
		}
		if attempt < maxAttempts && retryable(err) {
			continue
		}
		return err
	}
}

// retryable reports whether err is a deadlock or serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == sqlDeadlock || pe.Code == sqlSerialization)
}

// timestamp returns the current time as it will be stored.
func (s *db) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// timeArg returns t for storage, or nil (NULL) for the zero time.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// timePtrArg is timeArg for optional times.
func timePtrArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return timeArg(*t)
}

// zeroIfNil returns *t, or the zero time for nil.
func zeroIfNil(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// notFound maps pgx.ErrNoRows to ENOTFOUND naming what was sought.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return &vigil.Error{Code: vigil.ENOTFOUND, Message: what + " not found", Err: err}
	}
	return err
}

// constraint maps a violated unique constraint to ECONFLICT and a violated
// foreign key to EINVALID, with messages naming the field. Other errors
// are returned as they are.
func constraint(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case sqlUnique:
		return &vigil.Error{Code: vigil.ECONFLICT, Message: uniqueField(pe.ConstraintName) + " is already taken", Err: err}
	case sqlForeignKey:
		return &vigil.Error{Code: vigil.EINVALID, Message: "a referenced record does not exist", Err: err}
	}
	return err
}

// uniqueField names, for people, the field of a unique constraint.
func uniqueField(name string) string {
	switch name {
	case "patients_mrn":
		return "MRN"
	case "patients_pkey":
		return "patient id"
	case "devices_token_hash_key":
		return "device token"
	case "devices_pkey":
		return "device id"
	case "users_username_key":
		return "username"
	case "users_pkey":
		return "user id"
	case "tokens_hash_key":
		return "token"
	case "tokens_pkey":
		return "token id"
	case "external_identities_pkey", "external_identities_user_id_key":
		return "external identity"
	case "hl7_senders_application_facility":
		return "HL7 sender (application and facility)"
	case "patients_mrn_index":
		return "MRN"
	}
	return "a unique field"
}

// whereClause joins conditions with AND.
func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// limitClause returns a LIMIT clause for n > 0.
func limitClause(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" LIMIT %d", n)
}

// args collects query arguments and hands out their placeholders.
type args []any

// add appends v and returns its placeholder ($n).
func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// execOne runs a statement that must change one row at least; ENOTFOUND
// naming what otherwise.
func execOne(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, what, sql string, a ...any) error {
	tag, err := q.Exec(ctx, sql, a...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return vigil.Errorf(vigil.ENOTFOUND, "%s not found", what)
	}
	return nil
}
