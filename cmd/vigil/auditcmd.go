package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

const auditUsage = `Usage: vigil audit <subcommand> [flags]

Check and read the audit log in a data directory. Both subcommands only read
it, and may run beside a server.

Subcommands:
  verify   walk the hash chain, the journal and the node's signed checkpoints and
           report the first edited, removed, reordered, cut-off or re-hashed
           entry, or damage to the journal, with its position; on success say
           how far the log is proven complete, and print the entry count and the
           last hash (it may also be kept elsewhere and given back as --anchor);
           with --store, every node's chain in a PostgreSQL store, each against
           its own node's checkpoints (vigil admin's and vigil patients' chains
           against theirs in --data)
  list     print entries as JSON lines, oldest first: --patient, --user, --limit

Run 'vigil audit <subcommand> --help' for its flags.
`

// auditProgressEvery is how many entries verify checks between progress
// lines.
const auditProgressEvery = 100_000

// errChainBroken is returned by audit verify when the chain is broken; the
// problem has been printed.
var errChainBroken = errors.New("audit chain broken")

// auditCmd runs one `vigil audit` subcommand.
func auditCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return fmt.Errorf("%w: missing subcommand", errUsage)
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], getenv, stdout, stderr)
	case "list":
		return auditList(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("%w: unknown subcommand %q", errUsage, args[0])
}

func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit verify", "Walk the audit log's hash chain and report the first entry that was edited, removed or\nreordered. Exits 0 if the chain is intact, 1 if not.", stderr)
	var dataDir, anchor, pubKey, extra, store, nodeID string
	fs.StringVar(&dataDir, "data", "./vigil-data", "data directory")
	fs.StringVar(&anchor, "anchor", "", "SEQ:HASH printed by an earlier verify: the chain must still hold that entry with that hash")
	fs.StringVar(&pubKey, "public-key", "", "the node's checkpoint public key (hex), as printed at its first start and kept apart; default: the data directory's "+server.AuditPublicKeyFile+", which whoever can write the directory can replace. With --store, also other nodes' keys as NODE=HEX, comma-separated")
	fs.StringVar(&extra, "checkpoints", "", "more checkpoint files, comma-separated (the node's --audit-checkpoint-copy, other nodes' checkpoint files); the data directory's "+server.AuditCheckpointFile+" is always read, and with --store its "+CLIAuditCheckpointFile+" (vigil admin's and vigil patients' chains, checked with its "+CLIAuditPublicKeyFile+" unless --public-key names the chain)")
	fs.StringVar(&store, "store", "", "the server's --store: empty for SQLite in the data directory, or its PostgreSQL connection URL (prefer the environment variable); with PostgreSQL every node's chain in it is verified")
	fs.StringVar(&nodeID, "node-id", "", "with --store: the node ID of the data directory's node, whose chain continues in its journal (default: the host name, as vigil serve)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if store != "" {
		if anchor != "" {
			return fmt.Errorf("%w: --anchor is for one chain: not with --store", errUsage)
		}
		return auditVerifyNodes(ctx, store, dataDir, nodeID, pubKey, extra, stdout, stderr)
	}
	var v audit.Verifier
	if anchor != "" {
		a, err := audit.ParseAnchor(anchor)
		if err != nil {
			return fmt.Errorf("%w: --anchor: %s", errUsage, vigil.ErrorMessage(err))
		}
		v.Anchor = &a
	}
	v.ProgressEvery = auditProgressEvery
	v.Progress = func(r audit.Report) {
		fmt.Fprintf(stderr, "audit verify: %d entries intact so far\n", r.Entries)
	}

	cps, starts, err := auditCheckpoints(dataDir, pubKey, extra, stdout)
	if err != nil {
		return err
	}
	v.Checkpoints, v.Starts = cps, starts

	s, err := openAuditStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	log := auditLog(s, dataDir)
	rep, err := v.Verify(ctx, log)
	if err != nil {
		return err
	}
	if err := printReport(stdout, "", rep, len(cps) > 0); err != nil {
		return err
	}
	if rep.Entries == 0 {
		return nil
	}
	if last, err := s.LastAudit(ctx); err == nil && last.Seq < rep.LastSeq {
		fmt.Fprintf(stdout, "entries %d to %d are in the journal (%s), not yet in the database: the server copies them at its next start, or within a second while it runs\n",
			last.Seq+1, rep.LastSeq, server.AuditJournalDir)
	} else if vigil.ErrorCode(err) == vigil.ENOTFOUND && rep.LastSeq > 0 {
		fmt.Fprintf(stdout, "all %d entries are in the journal (%s), not yet in the database: the server copies them at its next start, or within a second while it runs\n",
			rep.LastSeq, server.AuditJournalDir)
	}
	return nil
}

// printReport prints the report of one chain's verification, each line
// after prefix (which names the chain of a node; "" for a single node's
// log); checkpointed says checkpoints were given. errChainBroken if the
// chain is broken.
func printReport(stdout io.Writer, prefix string, rep audit.Report, checkpointed bool) error {
	if rep.Problem != nil {
		fmt.Fprintf(stdout, "%saudit chain broken: %s\n", prefix, rep.Problem)
		first := int64(1)
		if rep.Start != nil {
			first = rep.Start.Seq + 1
		}
		if rep.LastSeq >= first {
			fmt.Fprintf(stdout, "%sentries %d to %d are intact; hash of %d: %s\n", prefix, first, rep.LastSeq, rep.LastSeq, audit.FormatHash(rep.LastHash))
		}
		return fmt.Errorf("%w: %s%s at seq %d", errChainBroken, prefix, rep.Problem.Kind, rep.Problem.Seq)
	}
	if rep.Start != nil {
		fmt.Fprintf(stdout, "%sthe log starts after seq %d (entries up to it were deleted by audit retention), hash %s\n", prefix, rep.Start.Seq, audit.FormatHash(rep.Start.Hash))
	}
	switch {
	case rep.Entries == 0:
		fmt.Fprintln(stdout, prefix+"audit chain intact: 0 entries (the log is empty)")
	default:
		fmt.Fprintf(stdout, "%saudit chain intact: %d entries, last hash %s\n", prefix, rep.Entries, audit.FormatHash(rep.LastHash))
	}
	switch {
	case !checkpointed:
		fmt.Fprintln(stdout, prefix+"no checkpoints: completeness is not proven (the chain alone cannot show a cut-off end, a deleted or a re-hashed log)")
	case rep.Proven == nil && rep.Entries > 0:
		fmt.Fprintln(stdout, prefix+"completeness not proven: no checkpoint covers an entry yet")
	case rep.Proven != nil:
		fmt.Fprintf(stdout, "%scomplete up to seq %d: proven by the checkpoint signed at %s\n", prefix, rep.Proven.Seq, rep.Proven.Time.Format(time.RFC3339))
		if rep.LastSeq > rep.Proven.Seq {
			fmt.Fprintf(stdout, "%s%s signed after it: not yet proven complete (the node signs a checkpoint every minute and at shutdown)\n", prefix, span(rep.Proven.Seq+1, rep.LastSeq))
		}
	}
	return nil
}

func auditList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit list", "Print audit entries matching the flags as JSON lines, oldest first.", stderr)
	var (
		dataDir string
		f       vigil.AuditFilter
		after   int64
	)
	fs.StringVar(&dataDir, "data", "./vigil-data", "data directory")
	fs.StringVar(&f.SubjectID, "patient", "", "only entries about this patient id")
	fs.StringVar(&f.Actor, "user", "", "only entries by this user (or device) id")
	fs.IntVar(&f.Limit, "limit", 100, "at most this many entries; 0 for all")
	fs.Int64Var(&after, "after", 0, "only entries after this seq (to page on from the last one printed)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	if f.Limit < 0 || after < 0 {
		return fmt.Errorf("%w: --limit and --after must not be negative", errUsage)
	}
	f.AfterSeq = after

	s, err := openAuditStore(ctx, dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	es, err := auditLog(s, dataDir).AuditEntries(ctx, f)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, e := range es {
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("write entries: %w", err)
		}
	}
	return nil
}

// auditCheckpoints reads the checkpoints of data directory dir and of the
// comma-separated files extra, checks their signatures with the public key
// pubHex (default: the directory's public key file) and returns those that
// bind the log (audit.Epoch), and as starts every checkpoint the key
// signed, which may name the log's start after retention
// (audit.Verifier.Starts). It prints each acceptance of damage, which
// set the checkpoints before it aside. A checkpoint whose signature does
// not check is errChainBroken, printed.
func auditCheckpoints(dir, pubHex, extra string, stdout io.Writer) (binding, starts []audit.Checkpoint, err error) {
	files := []string{filepath.Join(dir, server.AuditCheckpointFile)}
	for _, f := range strings.Split(extra, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	var all []audit.Checkpoint
	for _, f := range files {
		cs, err := audit.ReadCheckpoints(f)
		if vigil.ErrorCode(err) == vigil.EINVALID {
			fmt.Fprintf(stdout, "checkpoints damaged: %s\n", vigil.ErrorMessage(err))
			return nil, nil, fmt.Errorf("%w: checkpoint file damaged", errChainBroken)
		}
		if err != nil {
			return nil, nil, err
		}
		all = append(all, cs...)
	}
	if len(all) == 0 {
		return nil, nil, nil
	}
	if pubHex == "" {
		b, err := os.ReadFile(filepath.Join(dir, server.AuditPublicKeyFile))
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoints need the public key: %w (give --public-key)", err)
		}
		pubHex = string(b)
	}
	pub, err := audit.ParsePublicKey(pubHex)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --public-key: %s", errUsage, vigil.ErrorMessage(err))
	}
	slices.SortStableFunc(all, func(a, b audit.Checkpoint) int { return a.Time.Compare(b.Time) })
	binding, accepted, err := audit.Epoch(all, pub)
	if err != nil {
		fmt.Fprintf(stdout, "checkpoints forged or changed: %s\n", vigil.ErrorMessage(err))
		return nil, nil, fmt.Errorf("%w: checkpoint signature", errChainBroken)
	}
	for _, a := range accepted {
		fmt.Fprintf(stdout, "damage accepted at %s (the node was started with --audit-accept-damage at seq %d): %s; completeness before it is not proven\n",
			a.Time.Format(time.RFC3339), a.Seq, a.Accepted)
	}
	// Checkpoints set aside by an accepted damage may still name the log's
	// start after retention.
	for _, c := range all {
		if c.Check(pub) == nil {
			starts = append(starts, c)
		}
	}
	return binding, starts, nil
}

// span describes the seqs from a to b.
func span(a, b int64) string {
	if a == b {
		return fmt.Sprintf("entry %d was", a)
	}
	return fmt.Sprintf("entries %d to %d were", a, b)
}

// auditLog reads the audit log of data directory dir whose database is s:
// its entries, then those still in its journal (a server copies them
// within a second, or at its next start after a crash).
func auditLog(s *sqlite.AuditStore, dir string) audit.Trail {
	return audit.Trail{Store: s, Journal: filepath.Join(dir, server.AuditJournalDir)}
}

// openAuditStore opens the audit log of data directory dir, which must
// exist: audit.db, or the main database of a data directory from before
// the audit log had its own. A running server may have it open.
func openAuditStore(ctx context.Context, dir string) (*sqlite.AuditStore, error) {
	path := filepath.Join(dir, "audit.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		path = filepath.Join(dir, "vigil.db")
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Vigil database in %s (is --data the server's data directory?)", dir)
	} else if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return sqlite.OpenAudit(ctx, path)
}

// auditVerifyNodes verifies every node's chain in the PostgreSQL audit
// store at dsn (decision 0035), each against its own node's signed
// checkpoints: those of the data directory dir (the node nodeID's, whose
// chain continues in its journal there) and of the files extra (other
// nodes' checkpoint files or copies), checked with the node's public key
// (pubKeys: this node's as HEX, others' as NODE=HEX, comma-separated; this
// node's defaults to dir's public key file). The chains of vigil admin and
// vigil patients run with dir are checked against their checkpoints there
// (CLIAuditCheckpointFile), with dir's CLIAuditPublicKeyFile unless
// pubKeys names them (decision 0039). Each line of the report names
// its node; a broken chain is errChainBroken naming every broken node.
func auditVerifyNodes(ctx context.Context, dsn, dir, nodeID, pubKeys, extra string, stdout, stderr io.Writer) error {
	if nodeID == "" {
		host, _ := os.Hostname()
		nodeID = server.DefaultNodeID(host)
	}
	keys := map[string]ed25519.PublicKey{}
	var own ed25519.PublicKey
	for _, k := range strings.Split(pubKeys, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		node, hexKey, named := strings.Cut(k, "=")
		if !named {
			hexKey = node
		}
		pub, err := audit.ParsePublicKey(hexKey)
		if err != nil {
			return fmt.Errorf("%w: --public-key: %s", errUsage, vigil.ErrorMessage(err))
		}
		if named {
			keys[node] = pub
		} else {
			own = pub
		}
	}
	if own == nil {
		if b, err := os.ReadFile(filepath.Join(dir, server.AuditPublicKeyFile)); err == nil {
			if own, err = audit.ParsePublicKey(string(b)); err != nil {
				return fmt.Errorf("%s: %w", server.AuditPublicKeyFile, err)
			}
		}
	}
	if own != nil && keys[nodeID] == nil {
		keys[nodeID] = own
	}

	files := []string{filepath.Join(dir, server.AuditCheckpointFile)}
	for _, f := range strings.Split(extra, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	var all []audit.Checkpoint
	for _, f := range files {
		cs, err := audit.ReadCheckpoints(f)
		if vigil.ErrorCode(err) == vigil.EINVALID {
			fmt.Fprintf(stdout, "checkpoints damaged: %s\n", vigil.ErrorMessage(err))
			return fmt.Errorf("%w: checkpoint file damaged", errChainBroken)
		}
		if err != nil {
			return err
		}
		all = append(all, cs...)
	}
	// The chains of vigil admin and vigil patients run with this data
	// directory: their checkpoints, under the commands' key, whose public
	// half in the directory stands for each chain they name unless
	// --public-key names that chain's.
	cliCs, err := audit.ReadCheckpoints(filepath.Join(dir, CLIAuditCheckpointFile))
	if vigil.ErrorCode(err) == vigil.EINVALID {
		fmt.Fprintf(stdout, "checkpoints damaged: %s\n", vigil.ErrorMessage(err))
		return fmt.Errorf("%w: checkpoint file damaged", errChainBroken)
	}
	if err != nil {
		return err
	}
	if len(cliCs) > 0 {
		b, err := os.ReadFile(filepath.Join(dir, CLIAuditPublicKeyFile))
		if err != nil {
			return fmt.Errorf("the commands' checkpoints need their public key: %w (give --public-key NODE=HEX)", err)
		}
		cliPub, err := audit.ParsePublicKey(string(b))
		if err != nil {
			return fmt.Errorf("%s: %w", CLIAuditPublicKeyFile, err)
		}
		for _, c := range cliCs {
			if c.Node != "" && c.Node != nodeID && keys[c.Node] == nil && c.Check(cliPub) == nil {
				keys[c.Node] = cliPub
			}
		}
		all = append(all, cliCs...)
	}
	slices.SortStableFunc(all, func(a, b audit.Checkpoint) int { return a.Time.Compare(b.Time) })

	store, err := postgres.OpenAudit(ctx, dsn)
	if err != nil {
		return err
	}
	defer store.Close()
	chains, err := store.AuditChains(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(chains, nodeID) {
		chains = append(chains, nodeID) // its entries may all be in its journal still
	}
	for _, c := range all {
		if c.Node != "" && !slices.Contains(chains, c.Node) {
			chains = append(chains, c.Node) // checkpointed, but no entry left: truncated
		}
	}
	slices.Sort(chains)
	var broken []string
	for _, node := range chains {
		prefix := "node " + node + ": "
		pub := keys[node]
		if node == "" {
			prefix, pub = "the chain from before nodes had chains (not yet adopted by its node): ", own
		}
		var log vigil.AuditReader = store.Chain(node)
		if node == nodeID {
			log = audit.Trail{Store: store.Chain(node), Journal: filepath.Join(dir, server.AuditJournalDir)}
		}
		var v audit.Verifier
		v.ProgressEvery = auditProgressEvery
		v.Progress = func(r audit.Report) {
			fmt.Fprintf(stderr, "audit verify: %s%d entries intact so far\n", prefix, r.Entries)
		}
		var cs []audit.Checkpoint
		for _, c := range all {
			if c.Node == node {
				cs = append(cs, c)
			} else if node != "" && c.Node == "" && pub != nil && bytes.Equal(c.Key, pub) {
				cs = append(cs, c) // the chain from before, which the node adopted
			}
		}
		switch {
		case len(cs) > 0 && pub == nil:
			fmt.Fprintf(stdout, "%sno public key for its checkpoints (give --public-key %s=HEX): completeness is not proven\n", prefix, node)
			cs = nil
		case len(cs) > 0:
			binding, accepted, err := audit.Epoch(cs, pub)
			if err != nil {
				fmt.Fprintf(stdout, "%scheckpoints forged or changed: %s\n", prefix, vigil.ErrorMessage(err))
				broken = append(broken, node)
				continue
			}
			for _, a := range accepted {
				fmt.Fprintf(stdout, "%sdamage accepted at %s (the node was started with --audit-accept-damage at seq %d): %s; completeness before it is not proven\n",
					prefix, a.Time.Format(time.RFC3339), a.Seq, a.Accepted)
			}
			v.Checkpoints = binding
			for _, c := range cs {
				if c.Check(pub) == nil {
					v.Starts = append(v.Starts, c)
				}
			}
		}
		rep, err := v.Verify(ctx, log)
		if err != nil {
			return fmt.Errorf("%s%w", prefix, err)
		}
		if err := printReport(stdout, prefix, rep, len(cs) > 0); err != nil {
			broken = append(broken, node)
		}
	}
	if len(broken) > 0 {
		for i, n := range broken {
			if n == "" {
				broken[i] = `""`
			}
		}
		return fmt.Errorf("%w: the chain of node %s", errChainBroken, strings.Join(broken, ", node "))
	}
	return nil
}
