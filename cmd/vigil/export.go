package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/audit"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/consent"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/keys"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/server"
	"github.com/vigil-health/vigil/sqlite"
)

const exportSummary = `Write a de-identified research export of the patients with research consent:
Patient.ndjson and Observation.ndjson (FHIR R4) and manifest.json, which states
what was done and reports k-anonymity. Research ids and date shifts come from
the site's research key (<data>/research-key, created on first use). The server
must be stopped. Only --deidentify exports are offered here; identified exports
go through the FHIR bulk export API.`

// exportCmd runs vigil export --deidentify.
func exportCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export", exportSummary, stderr)
	dataDir := fs.String("data", "./vigil-data", "data directory of the stopped server")
	out := fs.String("out", "", "directory to write the export to (created; must not exist or be empty)")
	deidentify := fs.Bool("deidentify", false, "de-identify the export (required)")
	minGroup := fs.Int("min-group", 0, "withhold the patients of age bands with fewer patients than this (k-anonymity); 0: withhold none")
	maxShift := fs.Int("max-shift-days", deid.DefaultMaxShiftDays, "dates move by 1 to this many days, per patient")
	kekFile := fs.String("kek-file", "", "the server's key-encryption key file, which unseals the patients' identities (birth date and sex for the age bands); default <data>/kek")
	if err := parseFlags(fs, args, getenv); err != nil {
		return usageError(err)
	}
	switch {
	case !*deidentify:
		return fmt.Errorf("%w: only --deidentify exports are offered (identified data: FHIR bulk export)", errUsage)
	case *out == "":
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	if err := emptyDir(*out); err != nil {
		return err
	}

	s, err := openStopped(ctx, *dataDir)
	if err != nil {
		return err
	}
	defer s.Close()
	lock, err := server.LockDataDir(*dataDir)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer lock.Unlock()
	as, rec, err := server.OpenAuditLog(ctx, *dataDir, s.EarlierAudit(), audit.RecorderOptions{})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer as.Close()
	defer rec.Close(context.WithoutCancel(ctx))

	src, err := sealedSource(s, *dataDir, *kekFile)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	m, runErr := runDeidentifiedExport(ctx, src, *dataDir, *out, *minGroup, *maxShift)
	e := localAuditEntry("vigil export --deidentify", vigil.AuditResearchExport)
	if runErr != nil {
		e.Outcome, e.Detail = vigil.AuditFailure, vigil.ErrorMessage(runErr)
	} else {
		e.Detail = strconv.Itoa(m.Patients) + " patients, " + strconv.Itoa(m.Withheld) + " withheld, " + strconv.Itoa(m.Observations) + " observations"
	}
	if err := rec.Record(ctx, e); err != nil {
		if runErr == nil {
			os.RemoveAll(*out) // not audited: not handed out
			return fmt.Errorf("export: the audit log could not record it, so the export was removed: %w", err)
		}
		return fmt.Errorf("export: %w (and the audit log could not record the attempt: %v)", runErr, err)
	}
	if runErr != nil {
		return fmt.Errorf("export: %w", runErr)
	}
	fmt.Fprintf(stdout, "wrote %d patients (%d withheld) and %d observations to %s; smallest age-band group: %d (manifest.json)\n",
		m.Patients, m.Withheld, m.Observations, *out, m.KAnonymity.SmallestGroup)
	return nil
}

// sealedSource is the store of a stopped server as the export reads it:
// patients' identities are unsealed with the server's KEK file. A data
// directory without one (made before identities were sealed) is read as
// it is.
func sealedSource(s *sqlite.Store, dataDir, kekFile string) (consentSource, error) {
	if kekFile == "" {
		kekFile = filepath.Join(dataDir, server.KEKFileName)
	}
	if _, err := os.Stat(kekFile); errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	kek, err := keys.OpenFile(kekFile, false)
	if err != nil {
		return nil, err
	}
	return sealedExportStore{Store: keys.NewStore(s, keys.NewKeyring(kek, s)), ConsentStore: s}, nil
}

// sealedExportStore reads patients through the keyring and consents from
// the store beneath it.
type sealedExportStore struct {
	*keys.Store
	vigil.ConsentStore
}

// consentSource is the store as the export reads it.
type consentSource interface {
	deid.Source
	consent.Directory
	vigil.ConsentStore
}

func runDeidentifiedExport(ctx context.Context, s consentSource, dataDir, out string, minGroup, maxShift int) (*deid.Manifest, error) {
	key, err := deid.LoadKey(filepath.Join(dataDir, deid.KeyFile))
	if err != nil {
		return nil, err
	}
	d, err := deid.NewDeidentifier(key, maxShift)
	if err != nil {
		return nil, err
	}
	ids, err := (&consent.Checker{Store: s, Directory: s}).ResearchSubjects(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	ex, err := deid.NewExport(deid.Options{Deidentifier: d, AsOf: time.Now(), MinGroup: minGroup,
		Encoder: fhir.Encoder{Codes: catalog.Default(), Interpret: rules.Interpreter{}}})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", out, err)
	}
	return ex.Run(ctx, s, ids, func(name string) (io.WriteCloser, error) {
		return os.OpenFile(filepath.Join(out, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	})
}

// emptyDir returns nil if dir does not exist or is an empty directory.
func emptyDir(dir string) error {
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	if len(es) > 0 {
		return fmt.Errorf("--out %s is not empty", dir)
	}
	return nil
}

// localAuditEntry is the audit entry of a command run by the local
// operator, as vigil admin records them.
func localAuditEntry(resource string, action vigil.AuditAction) vigil.AuditEntry {
	operator := "unknown"
	if u, err := user.Current(); err == nil {
		operator = u.Username
	}
	return vigil.AuditEntry{
		ActorName: "vigil export (local user " + operator + ")",
		Action:    action,
		Resource:  resource,
		Remote:    "local",
		Outcome:   vigil.AuditSuccess,
	}
}
