package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	main   server.SealableStore
	sqlite *sqlite.Store   // main, when it is SQLite
	pg     *postgres.Store // main, when it is PostgreSQL
	rec    vigil.Auditor   // the audit log; nil unless opened with audited
	nodeID string          // the command's audit chain on PostgreSQL
	// announce prints what the operator must keep (a new key's public
	// half); nil prints nothing.
	announce func(format string, args ...any)
	closers  []func()          // run last first by Close
	exports  vigil.ExportFiles // FHIR bulk export jobs and files
	dsn      string            // the PostgreSQL database; "" with SQLite
	dataDir  string
}

// openCLIStore opens the main store of a command: with dsn "" the SQLite
// database in dataDir, refused while a server has it open and locked
// against one starting while the command runs; with a PostgreSQL dsn the
// database every node shares, which needs no stopped server (its writes
// are transactions like a node's). With audited, the audit log is opened
// too (see openAudit), before any change, so that no change is made
// that could not be audited.
func openCLIStore(ctx context.Context, dataDir, dsn, nodeID string, audited bool, announce func(string, ...any)) (_ *cliStore, err error) {
	c := &cliStore{dsn: dsn, dataDir: dataDir, announce: announce}
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
		if c.nodeID, err = cliNodeID(nodeID); err != nil {
			return nil, err
		}
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
// in its journal. With PostgreSQL: the command's own chain in the shared
// audit table (openCLIChain), so that it runs beside the nodes.
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
	return c.openCLIChain(ctx)
}

// Files of the audit chains of vigil admin and vigil patients on
// PostgreSQL in their --data directory: a signing key of the commands' own
// (not the node's, whose checkpoints must name the node's chain only) and
// the checkpoints it signs, each naming the command's node ID.
const (
	CLIAuditKeyFile        = "cli-audit-signing.key" // Ed25519, PKCS #8 PEM, 0600
	CLIAuditPublicKeyFile  = "cli-audit-signing.pub" // hex, for auditors
	CLIAuditCheckpointFile = "cli-audit-checkpoints" // one JSON object a line, append-only
)

// openCLIChain opens the audit chain of the command on PostgreSQL
// (decision 0039): the chain of its node ID c.nodeID in the audit table
// every node shares, written directly (no journal: each entry is in the
// database when Record returns) under that chain's writer lock only, so
// that nodes running meanwhile, each writing its own chain, are not in
// the way; a second command with the same node ID at the same moment is
// refused. The chain is checkpointed with the key CLIAuditKeyFile in the
// data directory (created on first use): before any change, after each
// entry (checkpointedRecorder) and at Close, into CLIAuditCheckpointFile,
// which vigil audit verify --store reads. A chain with entries that no
// checkpoint of this key names, or that no longer holds the last one's
// hash, is not this data directory's: refused (ECONFLICT), naming
// --node-id, rather than continued under a key that never signed it.
func (c *cliStore) openCLIChain(ctx context.Context) error {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	key, created, err := audit.LoadOrCreateKey(filepath.Join(c.dataDir, CLIAuditKeyFile), filepath.Join(c.dataDir, CLIAuditPublicKeyFile))
	if err != nil {
		return err
	}
	signer := audit.Signer{Key: key, Node: c.nodeID}
	if created && c.announce != nil {
		c.announce("Audit checkpoint key of the commands' chains created in %s (%s); public key, to keep apart and give vigil audit verify --public-key %s=HEX: %x",
			c.dataDir, CLIAuditKeyFile, c.nodeID, signer.Public())
	}
	all, err := postgres.OpenAudit(ctx, c.dsn)
	if err != nil {
		return fmt.Errorf("open audit store: %w", err)
	}
	db := all.Chain(c.nodeID)
	// The view's Close closes the pool it shares with all and releases
	// the writer's lock, which only the view holds.
	c.closers = append(c.closers, func() { db.Close() })
	if err := db.LockWriter(ctx); err != nil {
		if vigil.ErrorCode(err) == vigil.ECONFLICT {
			return fmt.Errorf("another process writes the audit chain %q in this database (a vigil command running now, or a node with that --node-id): wait for it, or give this command another --node-id: %w", c.nodeID, err)
		}
		return err
	}
	file := filepath.Join(c.dataDir, CLIAuditCheckpointFile)
	if err := checkCLIChain(ctx, db, file, signer); err != nil {
		return err
	}
	rec, err := audit.NewRecorder(ctx, db, audit.RecorderOptions{})
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	cp := &audit.Checkpointer{Signer: signer, Head: rec.Head, Files: []string{file}}
	c.closers = append(c.closers, func() {
		cctx := context.WithoutCancel(ctx)
		rec.Close(cctx)
		cp.Checkpoint(cctx, "") // a failure leaves the entries unproven, as a node's between checkpoints
	})
	// Signed before any change: the chain is this key's from now on, even
	// if the command stops before its first entry's checkpoint.
	if err := cp.Checkpoint(ctx, ""); err != nil {
		return err
	}
	c.rec = &checkpointedRecorder{rec: rec, cp: cp}
	return nil
}

// checkCLIChain refuses (ECONFLICT) to continue the chain of signer.Node in
// db unless the checkpoint file at path proves it is the chain this key
// wrote: an empty chain is anyone's; one with entries must have a
// checkpoint of signer's key naming it, and must still hold the hash of
// the last one (as a node checks its own chain at start). EINVALID if the
// file is damaged or a checkpoint of the chain in it is not signed by the
// key.
func checkCLIChain(ctx context.Context, db vigil.AuditReader, path string, signer audit.Signer) error {
	cs, err := audit.ReadCheckpoints(path)
	if err != nil {
		return err
	}
	binding, _, err := audit.Epoch(audit.OfChain(cs, signer.Node, signer.Public()), signer.Public())
	if err != nil {
		return fmt.Errorf("the checkpoints in %s: %w", path, err)
	}
	// No one prunes a command's chain (retention prunes each node's own),
	// so an empty chain has never been written.
	last, err := db.LastAudit(ctx)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	notOurs := func(why string) error {
		return vigil.Errorf(vigil.ECONFLICT, "the audit chain %q in the database %s: it was written with another data directory's key; run the command with the --data that wrote it, or with another --node-id",
			signer.Node, why)
	}
	if len(binding) == 0 {
		return notOurs(fmt.Sprintf("holds entries no checkpoint in %s names", path))
	}
	tip := binding[len(binding)-1]
	if tip.Seq == 0 {
		return nil // signed while empty: this key's
	}
	if last.Seq < tip.Seq {
		return vigil.Errorf(vigil.ECONFLICT, "the audit chain %q in the database ends at seq %d, before its checkpoint at seq %d: entries were removed (investigate with vigil audit verify --store)", signer.Node, last.Seq, tip.Seq)
	}
	found := false
	err = db.ScanAudit(ctx, tip.Seq, func(e vigil.AuditEntry) error {
		found = e.Seq == tip.Seq && bytes.Equal(e.Hash, tip.Hash)
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return err
	}
	if !found {
		return notOurs(fmt.Sprintf("does not hold the hash of its checkpoint at seq %d", tip.Seq))
	}
	return nil
}

var errStopScan = errors.New("stop")

// checkpointedRecorder records entries of a command's audit chain and
// signs a checkpoint of the chain after each, so that vigil audit verify
// proves it complete as soon as the command has returned.
type checkpointedRecorder struct {
	rec *audit.Recorder
	cp  *audit.Checkpointer
}

// Record records e (vigil.Auditor), then signs a checkpoint of the chain.
// An error from the checkpoint comes after e is recorded: it says so.
func (r *checkpointedRecorder) Record(ctx context.Context, e vigil.AuditEntry) error {
	if err := r.rec.Record(ctx, e); err != nil {
		return err
	}
	if err := r.cp.Checkpoint(ctx, ""); err != nil {
		return fmt.Errorf("recorded, but not checkpointed: %w", err)
	}
	return nil
}

// cliNodeID returns the node ID of a command's audit chain: id, checked
// as vigil serve checks a node's (1 to 64 of A-Za-z0-9_-), or by default
// "cli-" and the host name with other characters made '-'. Usage error if
// id is not one.
func cliNodeID(id string) (string, error) {
	if id == "" {
		host, _ := os.Hostname()
		return server.DefaultNodeID("cli-" + host), nil
	}
	if server.DefaultNodeID(id) != id {
		return "", fmt.Errorf("%w: --node-id %q: want 1 to 64 of A-Z, a-z, 0-9, '_' and '-'", errUsage, id)
	}
	return id, nil
}

// announceTo returns a cliStore's announce printing to w.
func announceTo(w io.Writer) func(string, ...any) {
	return func(format string, args ...any) { fmt.Fprintf(w, "vigil: "+format+"\n", args...) }
}

// nodeIDFlagUsage is the usage of the --node-id flag of vigil admin and
// vigil patients.
const nodeIDFlagUsage = "with --store: the node ID of this command's own audit chain in the database (not a running node's); default cli-<host name>"

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
