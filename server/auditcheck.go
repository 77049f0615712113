package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/bus"
	"github.com/vigil-health/vigil/retention"
)

// Files of the audit log's checkpoints in the data directory.
const (
	AuditKeyFile        = "audit-signing.key" // the node's Ed25519 checkpoint key (PKCS #8 PEM, 0600)
	AuditPublicKeyFile  = "audit-signing.pub" // its public key, hex, for auditors
	AuditCheckpointFile = "audit-checkpoints" // signed heads of the chain, one JSON object a line, append-only
	auditDamagedSuffix  = ".damaged-"         // a damaged journal set aside: audit-journal.damaged-<time>
	defaultCheckpoint   = time.Minute         // Options.AuditCheckpointInterval's default
	checkpointTimeout   = 10 * time.Second    // the shutdown checkpoint's bound
)

// openAudit opens the node's audit log (openAuditLog) and refuses to start
// on one that is damaged: a journal damaged in a way no torn write explains
// (audit.JournalDamage), or a log that does not reach, or does not pass
// through, its last signed checkpoint (truncated, deleted, re-hashed), or
// checkpoints whose signatures do not check. With Options.AuditAcceptDamage
// it starts all the same: a damaged journal is set aside whole (never
// deleted), the damage is logged at error level and recorded in the audit
// log, and a checkpoint that accepts it starts a new epoch. It then signs
// a checkpoint of the head and starts signing one every
// Options.AuditCheckpointInterval.
func (s *Server) openAudit(ctx context.Context, ropts audit.RecorderOptions) error {
	dir := s.opts.DataDir
	key, created, err := audit.LoadOrCreateKey(filepath.Join(dir, AuditKeyFile), filepath.Join(dir, AuditPublicKeyFile))
	if err != nil {
		return err
	}
	signer := audit.Signer{Key: key, Node: s.auditChain()}
	if created {
		s.opts.Announce("Audit checkpoint public key (keep it apart from this node, to verify its audit log with vigil audit verify --public-key): %x", signer.Public())
	}
	files := []string{filepath.Join(dir, AuditCheckpointFile)}
	if s.opts.AuditCheckpointCopy != "" {
		files = append(files, s.opts.AuditCheckpointCopy)
	}

	if err := checkNodeID(files[0], signer); err != nil {
		return err
	}
	var damage []string
	s.auditDB, s.auditor, err = s.openAuditLog(ctx, ropts, signer)
	var jd *audit.JournalDamage
	if errors.As(err, &jd) && s.opts.AuditAcceptDamage {
		journal := filepath.Join(dir, AuditJournalDir)
		aside := journal + auditDamagedSuffix + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(journal, aside); rerr != nil {
			return fmt.Errorf("set damaged audit journal aside: %w", rerr)
		}
		damage = append(damage, fmt.Sprintf("%v; the journal was set aside whole as %s", jd, filepath.Base(aside)))
		s.auditDB, s.auditor, err = s.openAuditLog(ctx, ropts, signer)
	}
	if errors.As(err, &jd) {
		return fmt.Errorf("%w; the audit log is not complete: investigate (vigil audit verify), or start with --audit-accept-damage to set the journal aside", err)
	}
	if err != nil {
		return err
	}

	head, err := s.auditor.Head(ctx)
	if err != nil {
		return fmt.Errorf("audit log head: %w", err)
	}
	if problem, err := s.checkCheckpoints(ctx, files, signer, head, created); err != nil {
		return err
	} else if problem != "" {
		if !s.opts.AuditAcceptDamage {
			return vigil.Errorf(vigil.ECONFLICT, "%s; the audit log is not complete: investigate (vigil audit verify), or start with --audit-accept-damage", problem)
		}
		damage = append(damage, problem)
	}

	s.ckpt = &checkpoints{Checkpointer: &audit.Checkpointer{Signer: signer, Head: s.auditor.Head, Files: files, Logger: s.logger,
		Sinks: []audit.CheckpointSink{logCheckpoints{log: s.log, node: signer.Node}}}}
	accepted := ""
	if len(damage) > 0 {
		accepted = strings.Join(damage, "; ")
		s.logger.Error("AUDIT LOG DAMAGED: started with --audit-accept-damage; the audit log is not proven complete before this start", "damage", accepted)
		if err := s.auditor.Record(ctx, vigil.AuditEntry{
			Time: time.Now().UTC(), ActorName: "vigil", Action: vigil.AuditDamageAccepted,
			Resource: "audit log", Outcome: vigil.AuditSuccess, Detail: accepted,
		}); err != nil {
			return fmt.Errorf("record accepted audit damage: %w", err)
		}
	}
	if err := s.ckpt.Checkpoint(ctx, accepted); err != nil {
		return err
	}
	interval := s.opts.AuditCheckpointInterval
	if interval <= 0 {
		interval = defaultCheckpoint
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.ckpt.stop, s.ckpt.done = cancel, make(chan struct{})
	go func() {
		defer close(s.ckpt.done)
		s.ckpt.Run(cctx, interval)
	}()
	return nil
}

// checkNodeID refuses (ECONFLICT) to start a node under another node ID
// than the one whose chain its data directory's journal and checkpoints
// belong to: a checkpoint in the node's file (path), signed by its key,
// names another node. Started so (a host renamed, with the node ID the
// host name by default), it would leave its chain and start another.
func checkNodeID(path string, signer audit.Signer) error {
	cs, err := audit.ReadCheckpoints(path)
	if err != nil {
		return nil // checkCheckpoints reports it
	}
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		if c.Node != "" && c.Node != signer.Node && c.Check(signer.Public()) == nil {
			now := "node ID " + signer.Node
			if signer.Node == "" {
				now = "a store of one node (SQLite)"
			}
			return vigil.Errorf(vigil.ECONFLICT, "this data directory's node writes the audit chain of node %s, not started with %s: start it with --node-id %s",
				c.Node, now, c.Node)
		}
	}
	return nil
}

// checkCheckpoints reads the checkpoints of the node's chain (signer.Node)
// in files (the node's file, then its copies, which other nodes' may
// share) and the node's last one in the durable log, and returns what is
// wrong, "" for nothing: a checkpoint not signed by signer, or an audit log whose head is behind the last
// checkpoint of the current epoch or does not hold its hash. A node whose
// key exists but whose checkpoint file does not has lost it. created says
// the key was just generated.
func (s *Server) checkCheckpoints(ctx context.Context, files []string, signer audit.Signer, head audit.Anchor, created bool) (string, error) {
	var all, tips []audit.Checkpoint // tips: the last checkpoint of each source
	for i, f := range files {
		cs, err := audit.ReadCheckpoints(f)
		if vigil.ErrorCode(err) == vigil.EINVALID {
			return err.Error(), nil
		}
		if err != nil {
			return "", err
		}
		if i == 0 && cs == nil && !created {
			if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
				return fmt.Sprintf("the checkpoint file %s is missing, though the signing key exists", filepath.Base(f)), nil
			}
		}
		cs = audit.OfChain(cs, signer.Node, signer.Public())
		if len(cs) > 0 {
			tips = append(tips, cs[len(cs)-1])
		}
		all = append(all, cs...)
	}
	if b, err := s.log.LastNodeCheckpoint(ctx, signer.Node); err != nil {
		return "", fmt.Errorf("read the audit checkpoint in the durable log: %w", err)
	} else if b != nil {
		var c audit.Checkpoint
		if err := json.Unmarshal(b, &c); err != nil {
			return "the audit checkpoint in the durable log is damaged", nil
		}
		tips = append(tips, c)
		all = append(all, c)
	}
	slices.SortStableFunc(all, func(a, b audit.Checkpoint) int { return a.Time.Compare(b.Time) })
	binding, _, err := audit.Epoch(all, signer.Public())
	if err != nil {
		return err.Error(), nil
	}
	if len(binding) == 0 {
		return "", nil
	}
	// The log must reach the greatest seq, and hold the hash of the last
	// checkpoint of every source (one rewritten source, re-signed with
	// the key, is caught by the others); each hash commits to the whole
	// chain before it. Checkpoints before an accepted damage are set aside.
	inEpoch := map[string]bool{}
	for _, c := range binding {
		inEpoch[string(c.Sig)] = true
	}
	check := []audit.Checkpoint{binding[len(binding)-1]}
	for _, c := range tips {
		if inEpoch[string(c.Sig)] {
			check = append(check, c)
		}
	}
	// Retention may have deleted the log up to a checkpoint: one at that
	// start must name its hash; those before it name deleted entries.
	start, startHash, err := s.auditor.AuditStart(ctx)
	if err != nil {
		return "", fmt.Errorf("read audit log start: %w", err)
	}
	for _, c := range check {
		if c.Seq == 0 || c.Seq < start {
			continue
		}
		if c.Seq == start {
			if !bytes.Equal(c.Hash, startHash) {
				return fmt.Sprintf("the audit log starts after seq %d, but its checkpoint signed at %s names another hash for it: the chain was rewritten",
					c.Seq, c.Time.Format(time.RFC3339)), nil
			}
			continue
		}
		if head.Seq < c.Seq {
			return fmt.Sprintf("the audit log ends at seq %d, behind its checkpoint of seq %d signed at %s (entries %d to %d are missing)",
				head.Seq, c.Seq, c.Time.Format(time.RFC3339), head.Seq+1, c.Seq), nil
		}
		at, err := s.auditEntryAt(ctx, c.Seq)
		if err != nil {
			return "", fmt.Errorf("read audit log: %w", err)
		}
		if at == nil || !bytes.Equal(at.Hash, c.Hash) {
			return fmt.Sprintf("the audit log's entry at seq %d is not the one its checkpoint signed at %s names: the chain was rewritten",
				c.Seq, c.Time.Format(time.RFC3339)), nil
		}
	}
	return "", nil
}

// auditEntryAt returns the entry of the node's chain at seq; nil if there
// is none.
func (s *Server) auditEntryAt(ctx context.Context, seq int64) (*vigil.AuditEntry, error) {
	var at *vigil.AuditEntry
	err := s.auditor.ScanAudit(ctx, seq, func(e vigil.AuditEntry) error {
		if e.Seq == seq {
			at = &e
		}
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return nil, err
	}
	return at, nil
}

// errFound ends a scan at the entry it looked for.
var errFound = errors.New("found")

// logCheckpoints keeps the checkpoints of node's chain in the durable log,
// in a stream of their own (bus.CheckpointStream), on the node's subject.
type logCheckpoints struct {
	log  *bus.Log
	node string
}

// PutCheckpoint stores c as JSON.
func (l logCheckpoints) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return l.log.PutNodeCheckpoint(ctx, l.node, b)
}

// checkpoints is the node's Checkpointer and its periodic run.
type checkpoints struct {
	*audit.Checkpointer
	stop context.CancelFunc // ends the periodic run; nil once stopped
	done chan struct{}      // closed when it has ended
}

// stopCheckpoints stops the periodic checkpoints.
func (s *Server) stopCheckpoints() {
	if s.ckpt == nil || s.ckpt.stop == nil {
		return
	}
	s.ckpt.stop()
	<-s.ckpt.done
	s.ckpt.stop = nil
}

// finalCheckpoint signs the head once the audit log is closed (every
// entry durable).
func (s *Server) finalCheckpoint() {
	if s.ckpt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkpointTimeout)
	defer cancel()
	if err := s.ckpt.Checkpoint(ctx, ""); err != nil {
		s.logger.Error("audit checkpoint at shutdown failed", "err", err)
	}
}

// auditCut returns the checkpoint audit retention may delete the log up to
// for the cutoff before (retention.Sweeper.AuditCut): the newest checkpoint
// of the node's own file, in the current epoch and signed by its key, that
// was signed before before and names an entry below the store's last.
func (s *Server) auditCut(ctx context.Context, before time.Time) (retention.AuditCut, bool, error) {
	if s.ckpt == nil || len(s.ckpt.Files) == 0 {
		return retention.AuditCut{}, false, nil
	}
	cs, err := audit.ReadCheckpoints(s.ckpt.Files[0])
	if err != nil {
		return retention.AuditCut{}, false, err
	}
	binding, _, err := audit.Epoch(audit.OfChain(cs, s.ckpt.Signer.Node, s.ckpt.Signer.Public()), s.ckpt.Signer.Public())
	if err != nil {
		return retention.AuditCut{}, false, err
	}
	last, err := s.auditDB.LastAudit(ctx)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return retention.AuditCut{}, false, nil
	} else if err != nil {
		return retention.AuditCut{}, false, err
	}
	c, ok := audit.RetentionPoint(binding, before, last.Seq)
	return retention.AuditCut{Seq: c.Seq, Hash: c.Hash, Signed: c.Time}, ok, nil
}
