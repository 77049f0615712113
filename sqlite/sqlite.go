// Package sqlite implements Vigil's stores on embedded SQLite database files
// (pure Go, modernc.org/sqlite): vigil.Store, vigil.AlertStore with
// vigil.WebhookStore, and vigil.AuditStore, each on a database of its own.
//
// The database runs in WAL mode with synchronous=FULL: once a write method
// returns nil its data survive a crash or power loss, so the log consumer may
// acknowledge what it wrote. Writes go through one connection (SQLite has one
// writer at a time); reads use a separate pool of read-only connections and
// never wait for the writer.
//
// Times are stored as unix microseconds and returned in UTC; finer precision
// is truncated.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a connection waits for a lock held by another
// connection (another process, or a WAL checkpoint) before failing.
const busyTimeout = 10 * time.Second

// Vigil keeps three SQLite databases, each with a type of its own that
// implements only the root interface of what that database holds:
//
//   - Store (vigil.db): identity, devices, users, teams, readings,
//     quarantine, rule configurations — vigil.Store;
//   - AlertStore (alerts.db): alerts, the rules engine's progress, webhooks
//     and their outbox — vigil.AlertWebhookStore;
//   - AuditStore (audit.db): the audit log — vigil.AuditStore.
//
// Passing one database where another is wanted does not compile: the
// alerting engine takes a vigil.AlertStore, which *Store does not
// implement, and so on. Every file carries the same schema (one set of
// migrations, so a database moved between roles by an older version
// still opens); the tables of the other roles stay empty.

// Store is the main database (vigil.db): a vigil.Store backed by one
// SQLite database file. It is safe for concurrent use.
type Store struct {
	db
	byTokenHash preparedStmt // DeviceByTokenHash's query, run on every device request
}

// preparedStmt is a query of the read pool prepared once, at first use
// (database/sql then prepares it once on each connection it runs on),
// rather than parsed again for each call. Safe for concurrent use.
type preparedStmt struct {
	mu sync.Mutex
	st *sql.Stmt
}

// get returns the statement q on r, preparing it if it is not yet.
func (p *preparedStmt) get(ctx context.Context, r *sql.DB, q string) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil {
		st, err := r.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("prepare statement: %w", err)
		}
		p.st = st
	}
	return p.st, nil
}

// AlertStore is the alerts database (alerts.db): alerts, their events, the
// rules engine's checkpoint, webhooks and their deliveries. They share a
// file, apart from the readings, so that the engine's commits never queue
// behind the store writer's large reading transactions. It is safe for
// concurrent use.
type AlertStore struct{ db }

// AuditStore is the audit database (audit.db): the audit log, apart from
// the readings, because every commit empties the page caches of a
// database's readers. It is safe for concurrent use.
type AuditStore struct{ db }

var (
	_ vigil.Store             = (*Store)(nil)
	_ vigil.MappingStore      = (*Store)(nil)
	_ vigil.AlertWebhookStore = (*AlertStore)(nil)
	_ vigil.AuditStore        = (*AuditStore)(nil)
)

// db is one SQLite database file: a writer connection and a pool of
// readers.
type db struct {
	w   *sql.DB // the single writer connection
	r   *sql.DB // read-only connections
	now func() time.Time
}

// Open opens the main database file at path (vigil.db), creating it (mode
// 0600) if it does not exist, and brings its schema up to date. The
// directory must exist and be writable: SQLite keeps its write-ahead log
// beside the file.
func Open(ctx context.Context, path string) (*Store, error) {
	d, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	return &Store{db: d}, nil
}

// OpenAlerts opens the alerts database file at path (alerts.db) as Open
// does.
func OpenAlerts(ctx context.Context, path string) (*AlertStore, error) {
	d, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	return &AlertStore{d}, nil
}

// OpenAudit opens the audit database file at path (audit.db) as Open does.
func OpenAudit(ctx context.Context, path string) (*AuditStore, error) {
	d, err := open(ctx, path)
	if err != nil {
		return nil, err
	}
	return &AuditStore{d}, nil
}

// EarlierAudit reads the audit log that versions before the audit
// database kept in the main database, for moving it to the audit
// database (audit.Copy) at start; it is empty in a main database created
// since.
func (s *Store) EarlierAudit() vigil.AuditReader { return &AuditStore{s.db} }

// open opens a database file, creating it (mode 0600) if it does not
// exist, and brings its schema up to date.
func open(ctx context.Context, path string) (db, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return db{}, fmt.Errorf("open sqlite store: %w", err)
	}
	// Create the file ourselves: it holds health data, so it is private to
	// its owner, and a missing or unwritable directory gives a plain error
	// rather than SQLite's "unable to open database file".
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return db{}, fmt.Errorf("open sqlite store: %w", err)
	}
	if err := f.Close(); err != nil {
		return db{}, fmt.Errorf("open sqlite store: %w", err)
	}

	s := db{now: time.Now}
	s.w, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return db{}, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	if err := s.init(ctx); err != nil {
		s.w.Close()
		return db{}, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}

	s.r, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		s.w.Close()
		return db{}, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	s.r.SetConnMaxIdleTime(0)
	if err := s.r.PingContext(ctx); err != nil {
		s.Close()
		return db{}, fmt.Errorf("open sqlite store %s: %w", abs, err)
	}
	return s, nil
}

// dsn returns the data source name of a connection to the file at abs: a
// writer, or a reader that refuses writes.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_synchronous", "FULL")
	// Page cache and memory-mapped reads: the indexes of a large readings
	// table are walked at random by inserts and lookups, and with SQLite's
	// default 2 MiB cache nearly every step is a read system call.
	q.Add("_pragma", "mmap_size(1073741824)")
	if readOnly {
		q.Set("_query_only", "on")
		q.Add("_pragma", "cache_size(-16384)") // 16 MiB per reader
	} else {
		q.Add("_pragma", "cache_size(-65536)") // 64 MiB
		// Deleted content is overwritten with zeros, in the table's pages
		// and in pages freed, so that an erased patient's data (and a
		// sealed patient's former plaintext) leaves no copy in the
		// database file; Compact clears the write-ahead log.
		q.Add("_pragma", "secure_delete(1)")
		q.Set("_txlock", "immediate") // take the write lock at BEGIN, not mid-transaction
		// Statement journals (the pages a multi-row statement changes,
		// kept so that the statement alone can be rolled back) stay in
		// memory instead of spilling to a temporary file past 64 KiB:
		// the store writer's 64-row inserts wrote every page they touched
		// there, two system calls a page (4 % of the node's CPU under
		// vigil bench), and no copy of a page's former content is left in
		// a deleted file. Durability is the write-ahead log's, unchanged.
		q.Add("_pragma", "temp_store(2)")
		// The write-ahead log is copied into the database file (and the
		// file synced) once it holds 8,192 pages (32 MiB) instead of
		// SQLite's 1,000: under vigil bench that was after nearly every
		// store transaction, and a page written by several transactions
		// is now copied once. Compact still truncates the log at once.
		q.Add("_pragma", "wal_autocheckpoint(8192)")
	}
	// SQLite ignores parameters it does not know; the driver consumes ours.
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String()
}

// init switches the database to WAL mode and applies pending migrations.
func (s *db) init(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("set journal mode: got %q, want wal", mode)
	}
	return migrate(ctx, s.w)
}

// Ping reports whether both the writer and the readers can reach the database.
func (s *db) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite writer: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("ping sqlite reader: %w", err)
	}
	return nil
}

// Close closes the database. Calls in flight may fail.
func (s *db) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite store: %w", err)
	}
	return nil
}

// write runs fn in a transaction on the writer connection, committing if fn
// returns nil and rolling back otherwise.
func (s *db) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// timestamp returns the current time as it will be stored.
func (s *db) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// micros returns t in unix microseconds for storage, or nil for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// microsPtr is micros for optional times.
func microsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return micros(*t)
}

// timeOf returns the UTC time of a stored unix microsecond value, or the zero
// time for NULL.
func timeOf(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return time.UnixMicro(us.Int64).UTC()
}

// timePtrOf is timeOf for optional times: nil for NULL.
func timePtrOf(us sql.NullInt64) *time.Time {
	if !us.Valid {
		return nil
	}
	t := timeOf(us)
	return &t
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// notFound maps sql.ErrNoRows to ENOTFOUND naming what was sought.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return &vigil.Error{Code: vigil.ENOTFOUND, Message: what + " not found", Err: err}
	}
	return err
}

// constraint maps a violated UNIQUE constraint to ECONFLICT and a violated
// foreign key to EINVALID, with messages naming the field. Other errors are
// returned as they are.
func constraint(err error) error {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return &vigil.Error{Code: vigil.ECONFLICT, Message: uniqueField(e.Error()) + " is already taken", Err: err}
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return &vigil.Error{Code: vigil.EINVALID, Message: "a referenced record does not exist", Err: err}
	}
	return err
}

// uniqueField names, for people, the field of a UNIQUE constraint failure
// message ("UNIQUE constraint failed: patients.mrn").
func uniqueField(msg string) string {
	switch {
	case strings.Contains(msg, "patients.mrn"):
		return "MRN"
	case strings.Contains(msg, "patients.id"):
		return "patient id"
	case strings.Contains(msg, "devices.token_hash"):
		return "device token"
	case strings.Contains(msg, "devices.id"):
		return "device id"
	case strings.Contains(msg, "hl7_senders.application"):
		return "HL7 sender (application and facility)"
	case strings.Contains(msg, "users.username"):
		return "username"
	case strings.Contains(msg, "users.id"):
		return "user id"
	case strings.Contains(msg, "tokens.hash"):
		return "token"
	case strings.Contains(msg, "tokens.id"):
		return "token id"
	}
	return "a unique field"
}
