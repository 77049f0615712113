package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// Checkpoints anchor the chain outside the audit database. A node signs the
// head of its chain (seq, hash, time) with an Ed25519 key of its own at a
// fixed interval and at shutdown, and appends the signed checkpoint to a
// file that lives beside, not inside, the database (and to copies on other
// storage). Someone who truncates the log, deletes audit.db or recomputes
// the chain's hashes then leaves a log that does not reach, or does not
// pass through, a checkpoint; to hide it they would also need the private
// key and every copy of the checkpoints.

// checkpointVersion is the first field of the signed encoding of a
// checkpoint that names no node (a single node's, or one from before
// nodes had chains); checkpointNodeVersion that of one that names its
// node. Different versions, so that the two never share an encoding.
const (
	checkpointVersion     = "vigil.audit.checkpoint.v1"
	checkpointNodeVersion = "vigil.audit.checkpoint.v2"
)

// Checkpoint is a signed head of the chain: the entry at Seq had hash Hash
// when the node signed it at Time. Node names the chain (the node ID,
// vigil.AuditEntry.Node); "" for a single node's store (SQLite) and for
// checkpoints from before nodes had chains.
type Checkpoint struct {
	Node string    `json:"node,omitempty"`
	Seq  int64     `json:"seq"`  // 0 for an empty log
	Hash []byte    `json:"hash"` // nil for an empty log
	Time time.Time `json:"time"` // when it was signed (UTC)
	// Accepted, if not empty, marks the start of a new trust epoch: the
	// node was started on a damaged audit log with the operator's explicit
	// consent, and this says what was damaged. Checkpoints before it no
	// longer bind the log (Verify reports that they were set aside).
	Accepted string `json:"accepted,omitempty"`
	Key      []byte `json:"key"` // the signer's Ed25519 public key
	Sig      []byte `json:"sig"` // Ed25519 signature of the encoding below
}

// Anchor returns the checkpoint's seq and hash.
func (c Checkpoint) Anchor() Anchor { return Anchor{Seq: c.Seq, Hash: c.Hash} }

// signed returns the encoding a checkpoint's signature covers: each field
// with its length as 8 bytes big-endian, in this order: checkpointVersion,
// Seq (8 bytes), Hash, Time (unix nanoseconds, 8 bytes), Accepted, Key; or,
// for a checkpoint with a Node, checkpointNodeVersion, Node, then the same.
func (c Checkpoint) signed() []byte {
	var b []byte
	if c.Node == "" {
		b = appendBytes(b, []byte(checkpointVersion))
	} else {
		b = appendBytes(b, []byte(checkpointNodeVersion))
		b = appendBytes(b, []byte(c.Node))
	}
	b = appendInt(b, c.Seq)
	b = appendBytes(b, c.Hash)
	b = appendInt(b, c.Time.UnixNano())
	b = appendBytes(b, []byte(c.Accepted))
	return appendBytes(b, c.Key)
}

// Check returns nil if c is signed by pub: its key is pub and its
// signature matches. EINVALID otherwise.
func (c Checkpoint) Check(pub ed25519.PublicKey) error {
	if !bytes.Equal(c.Key, pub) {
		return vigil.Errorf(vigil.EINVALID, "checkpoint%s of seq %d signed at %s: signed by another key (%x)", c.of(), c.Seq, c.Time.Format(time.RFC3339), c.Key)
	}
	if !ed25519.Verify(pub, c.signed(), c.Sig) {
		return vigil.Errorf(vigil.EINVALID, "checkpoint%s of seq %d signed at %s: bad signature (it was changed or forged)", c.of(), c.Seq, c.Time.Format(time.RFC3339))
	}
	return nil
}

// of names c's node for messages: " of node N", or "" for none.
func (c Checkpoint) of() string {
	if c.Node == "" {
		return ""
	}
	return " of node " + c.Node
}

// OfChain returns the checkpoints of cs that bind the chain of node: those
// naming it; and, for a node with an ID, those naming no node that claim
// its key pub: they are of the chain from before nodes had chains, which
// the node adopted (decision 0035). Other nodes' checkpoints are left out;
// signatures are not checked (see Epoch).
func OfChain(cs []Checkpoint, node string, pub ed25519.PublicKey) []Checkpoint {
	var out []Checkpoint
	for _, c := range cs {
		if c.Node == node || node != "" && c.Node == "" && bytes.Equal(c.Key, pub) {
			out = append(out, c)
		}
	}
	return out
}

// Signer signs checkpoints with an Ed25519 private key, of the chain of
// node Node ("" for a single node's store).
type Signer struct {
	Key  ed25519.PrivateKey
	Node string
}

// Public returns the public key that checks the Signer's checkpoints.
func (s Signer) Public() ed25519.PublicKey { return s.Key.Public().(ed25519.PublicKey) }

// Sign returns the checkpoint of head at t; accepted marks a new epoch
// (see Checkpoint.Accepted), "" for an ordinary one. The checkpoint names
// s.Node's chain.
func (s Signer) Sign(head Anchor, t time.Time, accepted string) Checkpoint {
	c := Checkpoint{Node: s.Node, Seq: head.Seq, Hash: head.Hash, Time: t.UTC(), Accepted: accepted, Key: s.Public()}
	c.Sig = ed25519.Sign(s.Key, c.signed())
	return c
}

// Files of a node's checkpoints.
const (
	keyPerm = 0o600
	pemType = "PRIVATE KEY"
)

// LoadOrCreateKey reads the Ed25519 private key in the PKCS #8 PEM file at
// path, or, if there is none, generates one and writes it there (0600,
// synced), and its public key to pubPath (hex, 0644) for auditors. created
// says it was generated.
func LoadOrCreateKey(path, pubPath string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != pemType {
			return nil, false, fmt.Errorf("audit signing key %s: not a PEM private key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, false, fmt.Errorf("audit signing key %s: %w", path, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, false, fmt.Errorf("audit signing key %s: not an Ed25519 key", path)
		}
		return ek, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read audit signing key: %w", err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate audit signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ek)
	if err != nil {
		return nil, false, fmt.Errorf("encode audit signing key: %w", err)
	}
	if err := writeSynced(path, pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), keyPerm); err != nil {
		return nil, false, fmt.Errorf("write audit signing key: %w", err)
	}
	pub := hex.EncodeToString(ek.Public().(ed25519.PublicKey)) + "\n"
	if err := writeSynced(pubPath, []byte(pub), 0o644); err != nil {
		return nil, false, fmt.Errorf("write audit public key: %w", err)
	}
	return ek, true, nil
}

// ParsePublicKey parses an Ed25519 public key written as hex (the public
// key file's content). EINVALID if s is not one.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(string(bytes.TrimSpace([]byte(s))))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, vigil.Errorf(vigil.EINVALID, "public key: want %d hex digits", 2*ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// writeSynced creates path with b, exclusively, and makes it durable with
// its directory entry.
func writeSynced(path string, b []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// AppendCheckpoint appends c to the checkpoint file at path, one JSON
// object a line, creating it (0600) if need be, and makes it durable. The
// file is only ever appended to.
func AppendCheckpoint(path string, c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("append checkpoint: %w", err)
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, keyPerm)
	if err != nil {
		return fmt.Errorf("append checkpoint: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && errors.Is(statErr, fs.ErrNotExist) {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		return fmt.Errorf("append checkpoint to %s: %w", path, err)
	}
	return nil
}

// ReadCheckpoints returns the checkpoints in the file at path, in file
// order; none if there is no file. A last line without its newline (an
// append cut short) is left out; any other line that is not a checkpoint
// is an error (EINVALID) naming its line. Signatures are not checked.
func ReadCheckpoints(path string) ([]Checkpoint, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	var cs []Checkpoint
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	line := 0
	for sc.Scan() {
		line++
		var c Checkpoint
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			if line == bytes.Count(b, []byte("\n"))+1 {
				break // the last line, without its newline: cut short
			}
			return nil, vigil.Errorf(vigil.EINVALID, "checkpoint file %s, line %d: not a checkpoint", path, line)
		}
		cs = append(cs, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return cs, nil
}

// Epoch returns the checkpoints of cs (in the order they were written)
// that bind the log, sorted by seq: those from the last one that accepted
// damage (Checkpoint.Accepted) and is signed by pub, on; and the accepting
// ones, oldest first. Every binding checkpoint must be signed by pub:
// EINVALID, naming it, if one is not. Checkpoints before the last
// accepting one are not checked: the operator set them aside.
func Epoch(cs []Checkpoint, pub ed25519.PublicKey) (binding, accepted []Checkpoint, err error) {
	from := 0
	for i, c := range cs {
		if c.Accepted != "" && c.Check(pub) == nil {
			accepted = append(accepted, c)
			from = i
		}
	}
	for _, c := range cs[from:] {
		if err := c.Check(pub); err != nil {
			return nil, nil, err
		}
	}
	binding = slices.Clone(cs[from:])
	slices.SortStableFunc(binding, func(a, b Checkpoint) int { return int(sign(a.Seq - b.Seq)) })
	return binding, accepted, nil
}

// CheckpointSink keeps checkpoints somewhere other than a file: the
// durable log, a remote service. Put returns once c is stored.
type CheckpointSink interface {
	PutCheckpoint(ctx context.Context, c Checkpoint) error
}

// Checkpointer signs the head of a Recorder's chain and appends it to its
// checkpoint files and sinks.
type Checkpointer struct {
	Signer Signer
	// Head returns the last durable entry's seq and hash.
	Head func(ctx context.Context) (Anchor, error)
	// Files are where checkpoints are appended: the first is the node's
	// own file, whose failure is an error; the others are copies (other
	// storage), whose failures are logged.
	Files []string
	// Sinks get every checkpoint too, after the files; their failures
	// are logged.
	Sinks  []CheckpointSink
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu   sync.Mutex
	last int64 // seq of the last checkpoint written; -1 none yet
	init bool
}

// Checkpoint signs the head and appends it, unless it is the head already
// checkpointed by this Checkpointer; accepted marks a new epoch (see
// Checkpoint.Accepted) and is always written. Safe for concurrent use.
func (c *Checkpointer) Checkpoint(ctx context.Context, accepted string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	head, err := c.Head(ctx)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if c.init && head.Seq == c.last && accepted == "" {
		return nil
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	cp := c.Signer.Sign(head, now(), accepted)
	for i, path := range c.Files {
		if err := AppendCheckpoint(path, cp); err != nil {
			if i == 0 {
				return err
			}
			if c.Logger != nil {
				c.Logger.Error("audit checkpoint copy failed", "path", path, "err", err)
			}
		}
	}
	for _, sk := range c.Sinks {
		if err := sk.PutCheckpoint(ctx, cp); err != nil && c.Logger != nil {
			c.Logger.Error("audit checkpoint copy failed", "sink", fmt.Sprintf("%T", sk), "err", err)
		}
	}
	c.last, c.init = head.Seq, true
	return nil
}

// Run writes a checkpoint every interval until ctx ends, logging failures.
func (c *Checkpointer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Checkpoint(ctx, ""); err != nil && ctx.Err() == nil && c.Logger != nil {
			c.Logger.Error("audit checkpoint failed", "err", err)
		}
	}
}

// RetentionPoint returns the checkpoint of binding (checkpoints whose
// signatures the caller has checked, see Epoch) that audit retention may
// delete the log up to, for a cutoff: the one with the greatest seq among
// those signed before before, with a seq from 1 and below below (the
// log's last seq, whose entry always stays). ok is false if there is none.
func RetentionPoint(binding []Checkpoint, before time.Time, below int64) (c Checkpoint, ok bool) {
	for _, b := range binding {
		if b.Seq >= 1 && b.Seq < below && b.Time.Before(before) && (!ok || b.Seq > c.Seq) {
			c, ok = b, true
		}
	}
	return c, ok
}
