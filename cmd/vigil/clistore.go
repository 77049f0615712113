package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/exportdir"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

// storeFlagUsage is the usage of the --store flag of vigil admin and vigil
// patients (VIGIL_STORE, as for vigil serve).
const storeFlagUsage = "the nodes' PostgreSQL database (postgres://…), as given to vigil serve --store; empty: the SQLite databases in --data, whose server must be stopped"

// cliStore is the store a vigil admin or vigil patients command works on,
// with what it needs beside it. Close it once done.
type cliStore struct {
	main    server.SealableStore
	sqlite  *sqlite.Store     // main, when it is SQLite
	pg      *postgres.Store   // main, when it is PostgreSQL
	rec     *audit.Recorder   // the audit log; nil unless opened with audited
	closers []func()          // run last first by Close
	exports vigil.ExportFiles // FHIR bulk export jobs and files
	dsn     string            // the PostgreSQL database; "" with SQLite
	dataDir string
}

// openCLIStore opens the main store of a command: with dsn "" the SQLite
// database in dataDir, refused while a server has it open and locked
// against one starting while the command runs; with a PostgreSQL dsn the
// database every node shares, which needs no stopped server (its writes
// are transactions like a node's). With audited, the audit log is opened
// too (see openCLIAudit), before any change, so that no change is made
// that could not be audited.
func openCLIStore(ctx context.Context, dataDir, dsn string, audited bool) (_ *cliStore, err error) {
	c := &cliStore{dsn: dsn, dataDir: dataDir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if dsn == "" {
		s, err := openStopped(ctx, dataDir)
		if err != nil {
			return nil, err
		}
		c.main, c.sqlite = s, s
		c.closers = append(c.closers, func() { s.Close() })
		// Held while the command runs, so that a server cannot start on
		// the directory meanwhile (and a running one that the check above
		// missed is refused here).
		lock, err := server.LockDataDir(dataDir)
		if err != nil {
			return nil, err
		}
		c.closers = append(c.closers, func() { lock.Unlock() })
		c.exports = exportdir.New(filepath.Join(dataDir, server.ExportDirName))
	} else {
		if !postgres.IsDSN(dsn) {
			return nil, fmt.Errorf("%w: --store: want a postgres:// or postgresql:// URL", errUsage)
		}
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		c.main, c.pg = s, s
		c.closers = append(c.closers, func() { s.Close() })
		c.exports = s.ExportFiles()
	}
	if audited {
		if err := c.openAudit(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// openAudit opens the audit log the command's changes are recorded in.
// With SQLite: the data directory's, recovering what a crashed server left
// in its journal. With PostgreSQL: the database's, written directly (no
// journal) under the audit log's writer lock, which a running node holds:
// a change is refused while a node runs, rather than written unaudited or
// into the node's chain behind its journal. Where dataDir is a node's data
// directory with an audit journal, what that node left in it is copied to
// the database first, as the node would at its start.
func (c *cliStore) openAudit(ctx context.Context) error {
	if c.sqlite != nil {
		as, rec, err := server.OpenAuditLog(ctx, c.dataDir, c.sqlite.EarlierAudit(), audit.RecorderOptions{})
		if err != nil {
			return err
		}
		c.closers = append(c.closers, func() { as.Close() })
		c.rec = rec
		c.closers = append(c.closers, func() { rec.Close(context.WithoutCancel(ctx)) })
		return nil
	}
	db, err := postgres.OpenAudit(ctx, c.dsn)
	if err != nil {
		return fmt.Errorf("open audit store: %w", err)
	}
	c.closers = append(c.closers, func() { db.Close() })
	if err := db.LockWriter(ctx); err != nil {
		if vigil.ErrorCode(err) == vigil.ECONFLICT {
			return fmt.Errorf("a running Vigil node writes the audit log of this database, and a change must be audited: stop the nodes, or make the change through the API as an admin: %w", err)
		}
		return err
	}
	opts := audit.RecorderOptions{}
	journal := filepath.Join(c.dataDir, server.AuditJournalDir)
	if _, err := os.Stat(journal); err == nil {
		opts.Journal = journal
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open audit journal: %w", err)
	}
	rec, err := audit.NewRecorder(ctx, db, opts)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	c.rec = rec
	c.closers = append(c.closers, func() { rec.Close(context.WithoutCancel(ctx)) })
	return nil
}

// alerts opens the alerts store beside the main one; the caller closes it.
func (c *cliStore) alerts(ctx context.Context) (interface {
	vigil.AlertEraser
	Close() error
}, error) {
	if c.pg != nil {
		a, err := postgres.OpenAlerts(ctx, c.dsn)
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	a, err := sqlite.OpenAlerts(ctx, filepath.Join(c.dataDir, server.AlertsDB))
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Close closes what openCLIStore opened, last first.
func (c *cliStore) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}
