// Package backup takes consistent backups of a Vigil data directory while
// the node runs, and restores them.
//
// # Archive
//
// A backup is a plain tar archive (gzip-compressed when its name ends in
// .gz or .tgz) of the data directory's files, paths relative to it, files
// 0600 and directories 0700, and last a MANIFEST.json (Manifest): format,
// Vigil version, schema version of each database, and the path, size and
// SHA-256 of every file. Standard tools read it (tar, sha256sum, jq).
//
// # What is copied, in which order, and why it is consistent
//
// A backup reads the data directory and takes no lock: the node goes on
// serving, ingesting and alerting. Each part is copied in an order that
// keeps the parts consistent with each other:
//
//  0. The audit log's checkpoint key, public key and checkpoint file, first:
//     every checkpoint names an entry that was durable when it was signed,
//     so the journal and audit.db copied after it hold every entry it
//     names, and the restored node verifies against it.
//  1. audit-journal/: the audit journal's segments. Segments are removed
//     only after their entries are in audit.db, so a segment that vanishes
//     during the copy has its entries in the audit.db copied next.
//  2. audit.db, vigil.db, alerts.db: each a snapshot of one moment (SQLite
//     VACUUM INTO, sqlite.Snapshot), taken after the journal: audit.db holds
//     at least every entry the journal lost meanwhile, and the journal and
//     audit.db together hold one unbroken chain; at start the node copies
//     what the journal holds beyond audit.db.
//  3. log/: the durable log's files (JetStream file store), after the
//     snapshots. Every reading acknowledged before the backup began was
//     fsynced in the log before it began, so it is in this copy whether or
//     not it had reached vigil.db; and the log covers the position the
//     rules engine saved in alerts.db. The consumers' states (obs/) are left
//     out: they were copied at another moment than the databases, so a
//     restored node recreates its consumers from the start of the log; the
//     store writer skips the readings it holds (idempotency keys) and the
//     rules engine the positions alerts.db has processed. The stream's
//     index (msgs/index.db) is left out too: JetStream rebuilds it from
//     the message blocks. So is the stream of audit checkpoints: it may
//     name entries newer than the audit.db copy (the file of step 0 is the
//     archive's record of the checkpoints).
//  4. tls/: the node's certificate authority and server certificate.
//
// A file appended to during the copy (the log's last block, the journal's
// last segment) is copied up to its length when the copy starts; a record
// torn there was written after the backup began and is dropped at start.
// Other files in the data directory (SQLite's -wal and -shm files, whose
// content the snapshots hold; FHIR export files) are not copied.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// Format identifies the archive format in Manifest.Format.
const Format = "vigil-backup/1"

// ManifestName is the name of the manifest, the archive's last entry.
const ManifestName = "MANIFEST.json"

// Parts of the data directory.
const (
	AuditJournalDir = "audit-journal"
	LogDir          = "log"
	TLSDir          = "tls"
)

// AuditFiles are the audit log's checkpoint files (see package audit):
// the signing key, its public key and the signed checkpoints; the key of
// the redacted user names in audit entries (server.UsernameKeyFile), so
// that a restored node's entries match the old ones; and the research key
// of de-identified exports (deid.KeyFile), so that a restored node gives
// patients the same research ids and date shifts.
var AuditFiles = []string{"audit-signing.key", "audit-signing.pub", "audit-checkpoints", "username-key", "research-key"}

// Databases are the SQLite files of a data directory, in the order they are
// copied (audit.db first: see the package comment).
var Databases = []string{"audit.db", "vigil.db", "alerts.db"}

// PostgresMarker is the file a node on PostgreSQL (vigil serve --store
// postgres://…) keeps in its data directory: its stores are not in the
// directory, and a backup of the directory alone would not hold them.
const PostgresMarker = "store-postgres"

// auditCheckpointStream is the durable log's stream of audit checkpoints
// (bus.CheckpointStream), left out of backups (skipInLog).
const auditCheckpointStream = "VIGIL_AUDIT_CHECKPOINTS"

// ignored are data directory entries a backup leaves out on purpose.
var ignored = []string{"fhir-export"}

// Manifest describes a backup.
type Manifest struct {
	Format  string    `json:"format"`        // Format
	Version string    `json:"vigil_version"` // the version of the vigil that took it
	Created time.Time `json:"created"`       // when it began (UTC)
	// Schemas is each database's schema version (its newest migration).
	Schemas map[string]int `json:"schemas"`
	// Log says whether the durable log is in the backup: false when the
	// node uses an external NATS cluster, whose streams are backed up with
	// NATS's tools.
	Log   bool   `json:"log"`
	Files []File `json:"files"` // in archive order
}

// File is one file of a backup.
type File struct {
	Path   string `json:"path"` // slash-separated, relative to the data directory
	Size   int64  `json:"size"` // bytes
	SHA256 string `json:"sha256"`
}

// Options configure Create.
type Options struct {
	DataDir string
	Version string           // recorded in the manifest
	Now     func() time.Time // nil: time.Now
	// Progress receives one line per step and, for long copies, every
	// 64 MiB; nil discards them.
	Progress io.Writer
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

// progressEvery is how many bytes a long copy reports after.
const progressEvery = 64 << 20

// Create writes a backup of opts.DataDir to w as an uncompressed tar
// stream, and returns its manifest. The node may be running (see the
// package comment). The data directory must hold a node's databases.
func Create(ctx context.Context, w io.Writer, opts Options) (*Manifest, error) {
	dir := opts.DataDir
	if _, err := os.Stat(filepath.Join(dir, PostgresMarker)); err == nil {
		return nil, fmt.Errorf("back up %s: %w", dir, vigil.Errorf(vigil.EINVALID,
			"this node keeps its stores in PostgreSQL, which vigil backup does not copy: back the database up with "+
				"PostgreSQL's own tools (pg_dump, or pg_basebackup with WAL archiving) and the data directory's audit journal, "+
				"keys and certificates with them; see docs/operations.md"))
	}
	for _, db := range Databases {
		if _, err := os.Stat(filepath.Join(dir, db)); err != nil {
			return nil, fmt.Errorf("back up %s: not a Vigil data directory: %w", dir, err)
		}
	}
	b := &builder{tw: tar.NewWriter(w), dir: dir, progress: opts.Progress, start: time.Now()}
	if b.progress == nil {
		b.progress = io.Discard
	}
	m := &Manifest{Format: Format, Version: opts.Version, Created: opts.now(), Schemas: map[string]int{}}
	b.m = m

	// 0. The audit checkpoints, before the entries they name.
	for _, f := range AuditFiles {
		if err := b.tree(ctx, f, nil); err != nil {
			return nil, err
		}
	}
	// 1. The audit journal, before audit.db.
	if err := b.tree(ctx, AuditJournalDir, nil); err != nil {
		return nil, err
	}
	// 2. The databases.
	stage, err := os.MkdirTemp("", "vigil-backup-")
	if err != nil {
		return nil, fmt.Errorf("back up: staging directory: %w", err)
	}
	defer os.RemoveAll(stage)
	for _, db := range Databases {
		if err := b.database(ctx, db, stage); err != nil {
			return nil, err
		}
	}
	// 3. The log, after the databases, without the consumers' states.
	if _, err := os.Stat(filepath.Join(dir, LogDir)); err == nil {
		m.Log = true
		if err := b.tree(ctx, LogDir, skipInLog); err != nil {
			return nil, err
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		b.say("log: not in the data directory (external NATS): back up its stream with NATS's tools")
	} else {
		return nil, fmt.Errorf("back up the log: %w", err)
	}
	// 4. The certificate authority.
	if err := b.tree(ctx, TLSDir, nil); err != nil {
		return nil, err
	}
	b.skipped()

	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("back up: encode manifest: %w", err)
	}
	body = append(body, '\n')
	if err := b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o600, Size: int64(len(body)),
		ModTime: m.Created}); err != nil {
		return nil, fmt.Errorf("back up: write manifest: %w", err)
	}
	if _, err := b.tw.Write(body); err != nil {
		return nil, fmt.Errorf("back up: write manifest: %w", err)
	}
	if err := b.tw.Close(); err != nil {
		return nil, fmt.Errorf("back up: finish archive: %w", err)
	}
	b.say("done: %d files, %s in %s", len(m.Files), size(b.total), time.Since(b.start).Round(time.Millisecond))
	return m, nil
}

// builder writes the archive.
type builder struct {
	tw       *tar.Writer
	dir      string
	m        *Manifest
	progress io.Writer
	start    time.Time
	total    int64
}

func (b *builder) say(format string, args ...any) {
	fmt.Fprintf(b.progress, "backup: "+format+"\n", args...)
}

// database adds a snapshot of the database file name.
func (b *builder) database(ctx context.Context, name, stage string) error {
	t := time.Now()
	tmp := filepath.Join(stage, name)
	schema, err := sqlite.Snapshot(ctx, filepath.Join(b.dir, name), tmp)
	if err != nil {
		return fmt.Errorf("back up %s: %w", name, err)
	}
	defer os.Remove(tmp)
	b.m.Schemas[name] = schema
	n, err := b.file(ctx, tmp, name, true)
	if err != nil {
		return err
	}
	b.say("%s: %s, schema %d (%s)", name, size(n), schema, time.Since(t).Round(time.Millisecond))
	return nil
}

// skipInLog reports the log's files left out of a backup: the consumers'
// states (obs/), and the stream's index (msgs/index.db), a cache of what
// the message blocks hold that was written at another moment than the
// blocks were copied; without it JetStream rebuilds the index from the
// blocks at start. And the audit checkpoints' stream: copied after
// audit.db, it may hold a checkpoint of entries the archive lacks (the
// checkpoint file, copied first, is the archive's record of them).
func skipInLog(rel string) bool {
	switch path.Base(rel) {
	case "obs", "index.db", auditCheckpointStream:
		return true
	}
	return false
}

// tree adds the directory rel of the data directory with every file under
// it, except subtrees and files for which skip reports true. Files that vanish
// between the listing and the copy are left out (see the package comment).
func (b *builder) tree(ctx context.Context, rel string, skip func(rel string) bool) error {
	t := time.Now()
	if _, err := os.Stat(filepath.Join(b.dir, rel)); errors.Is(err, fs.ErrNotExist) {
		b.say("%s: none", rel)
		return nil
	}
	var files int
	var bytes int64
	err := filepath.WalkDir(filepath.Join(b.dir, rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != filepath.Join(b.dir, rel) {
				return nil // removed meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := filepath.Rel(b.dir, p)
		if err != nil {
			return err
		}
		r = filepath.ToSlash(r)
		switch {
		case d.IsDir():
			if skip != nil && skip(r) {
				return fs.SkipDir
			}
			return b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: r + "/", Mode: 0o700, ModTime: b.m.Created})
		case d.Type().IsRegular():
			if skip != nil && skip(r) {
				return nil
			}
			n, err := b.file(ctx, p, r, false)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile
			}
			files++
			bytes += n
			return err
		default:
			return fmt.Errorf("%s is not a regular file or directory", r)
		}
	})
	if err != nil {
		return fmt.Errorf("back up %s: %w", rel, err)
	}
	b.say("%s: %d files, %s (%s)", rel, files, size(bytes), time.Since(t).Round(time.Millisecond))
	return nil
}

// file adds the file at p under the archive name name: as long as it is
// when opened (a file appended to meanwhile is cut there). A file that
// shrinks during the copy fails the backup unless stable is false and it
// vanished. It returns the bytes copied.
func (b *builder) file(ctx context.Context, p, name string, stable bool) (int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n := st.Size()
	if err := b.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: n, ModTime: st.ModTime()}); err != nil {
		return 0, fmt.Errorf("write %s: %w", name, err)
	}
	h := sha256.New()
	w := io.MultiWriter(b.tw, h)
	var done int64
	for done < n {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		c, err := io.CopyN(w, f, min(n-done, progressEvery))
		done += c
		if err != nil {
			if errors.Is(err, io.EOF) {
				return done, fmt.Errorf("copy %s: it shrank from %d to %d bytes during the backup", name, n, done)
			}
			return done, fmt.Errorf("copy %s: %w", name, err)
		}
		if n > progressEvery && done < n {
			b.say("%s: %s of %s", name, size(done), size(n))
		}
	}
	b.m.Files = append(b.m.Files, File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	b.total += n
	return n, nil
}

// skipped reports the data directory's entries the backup did not copy.
func (b *builder) skipped() {
	des, err := os.ReadDir(b.dir)
	if err != nil {
		return
	}
	for _, de := range des {
		name := de.Name()
		if name == AuditJournalDir || name == LogDir || name == TLSDir || slices.Contains(Databases, name) || slices.Contains(AuditFiles, name) || slices.Contains(ignored, name) {
			continue
		}
		if base, ok := cutAny(name, "-wal", "-shm", "-journal"); ok && slices.Contains(Databases, base) {
			continue
		}
		b.say("not copied: %s", name)
	}
}

func cutAny(s string, suffixes ...string) (string, bool) {
	for _, x := range suffixes {
		if base, ok := strings.CutSuffix(s, x); ok {
			return base, true
		}
	}
	return s, false
}

// size formats a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Compressed reports whether an archive name asks for gzip compression.
func Compressed(name string) bool {
	return strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".tgz")
}

// WriteFile writes a backup of opts.DataDir to the file out, gzip-compressed
// if Compressed(out), and returns its manifest. The archive is written to a
// temporary file beside out, synced, and renamed to out only when complete;
// out must not exist.
func WriteFile(ctx context.Context, out string, opts Options) (_ *Manifest, err error) {
	if _, err := os.Stat(out); err == nil {
		return nil, fmt.Errorf("back up: %s exists", out)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("back up: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var w io.Writer = f
	var zw *gzip.Writer
	if Compressed(out) {
		// The fastest level: SQLite pages and log batches compress about
		// 8:1 even so, and the default level is several times slower (see
		// docs/performance.md).
		zw, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		w = zw
	}
	m, err := Create(ctx, w, opts)
	if err != nil {
		return nil, err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("back up: compress: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("back up: sync %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("back up: %w", err)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return nil, fmt.Errorf("back up: %w", err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		return nil, fmt.Errorf("back up: %w", err)
	}
	return m, nil
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
