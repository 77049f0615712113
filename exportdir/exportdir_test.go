package exportdir_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/exportdir"
	"github.com/vigil-health/vigil/storetest"
)

func TestExportFiles(t *testing.T) {
	storetest.RunExportFiles(t, 64<<10, func(t *testing.T) vigil.ExportFiles {
		return exportdir.New(filepath.Join(t.TempDir(), "fhir-export"))
	})
}

// TestLeftovers: a job directory without a record (left by an older
// version, which kept jobs in memory) is listed in no state, so that a
// sweep removes it, and its files are erased like a job's.
func TestLeftovers(t *testing.T) {
	root := t.TempDir()
	for job, body := range map[string]string{
		"job1": `{"resourceType":"Patient","id":"pat_gone"}`,
		"job2": `{"resourceType":"Patient","id":"pat_other"}`,
	} {
		if err := os.MkdirAll(filepath.Join(root, job), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, job, "Patient.ndjson"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := exportdir.New(root)
	js, err := d.Exports(t.Context())
	if err != nil || len(js) != 2 || js[0].ID != "job1" || js[0].State != "" {
		t.Fatalf("Exports = %+v, %v; want job1 and job2 in no state", js, err)
	}
	n, err := d.EraseExports(t.Context(), "pat_gone")
	if err != nil || n != 1 {
		t.Fatalf("EraseExports = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(root, "job1")); !os.IsNotExist(err) {
		t.Errorf("the export naming the patient is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "job2", "Patient.ndjson")); err != nil {
		t.Errorf("another export was deleted: %v", err)
	}
	if n, err := exportdir.New(filepath.Join(root, "missing")).EraseExports(t.Context(), "pat_gone"); err != nil || n != 0 {
		t.Errorf("EraseExports of a missing directory = %d, %v", n, err)
	}
}

// TestReaderNames finds a needle wherever it is, also across the blocks
// it reads and with readers that return a byte at a time.
func TestReaderNames(t *testing.T) {
	const needle = "pat_needle"
	for _, tc := range []struct {
		name string
		text string
		want bool
	}{
		{"empty", "", false},
		{"alone", needle, true},
		{"start of a block", needle + strings.Repeat("x", 200<<10), true},
		{"across a block", strings.Repeat("x", 64<<10+len(needle)-3) + needle + "y", true},
		{"at the end", strings.Repeat("x", 300<<10) + needle, true},
		{"a prefix only", strings.Repeat("x", 64<<10) + needle[:len(needle)-1], false},
	} {
		for _, r := range []struct {
			kind string
			wrap func(string) *strings.Reader
		}{{"plain", strings.NewReader}} {
			got, err := exportdir.ReaderNames(r.wrap(tc.text), needle)
			if err != nil || got != tc.want {
				t.Errorf("%s, %s: %v, %v; want %v", tc.name, r.kind, got, err, tc.want)
			}
		}
		got, err := exportdir.ReaderNames(iotest.OneByteReader(strings.NewReader(tc.text)), needle)
		if err != nil || got != tc.want {
			t.Errorf("%s, a byte at a time: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

// FuzzOpenExportFile: the job and file names of a download come from the
// request's path; whatever they are, only the job's own files open, never
// a path outside the export directory (a file beside it here).
func FuzzOpenExportFile(f *testing.F) {
	for _, seed := range [][2]string{{"exp_1", "Patient.ndjson"}, {"..", "secret.ndjson"}, {"exp_1", "../../secret.ndjson"},
		{"exp_1/..", "../secret.ndjson"}, {".", "job.json"}, {"exp_1", "job.json"}, {"", ""}, {"exp_1", "/etc/passwd"}} {
		f.Add(seed[0], seed[1])
	}
	base := f.TempDir()
	if err := os.WriteFile(filepath.Join(base, "secret.ndjson"), []byte("secret"), 0o600); err != nil {
		f.Fatal(err)
	}
	d := exportdir.New(filepath.Join(base, "fhir-export"))
	if err := d.CreateExport(f.Context(), &vigil.ExportJob{ID: "exp_1", State: vigil.ExportRunning}); err != nil {
		f.Fatal(err)
	}
	w, err := d.CreateExportFile(f.Context(), "exp_1", "Patient.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	w.Write([]byte("{}\n"))
	w.Close()
	f.Fuzz(func(t *testing.T, job, name string) {
		r, err := d.OpenExportFile(t.Context(), job, name)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.ENOTFOUND {
				t.Fatalf("OpenExportFile(%q, %q): %v, want ENOTFOUND", job, name, err)
			}
			return
		}
		defer r.Close()
		if job != "exp_1" || name != "Patient.ndjson" {
			t.Fatalf("OpenExportFile(%q, %q) opened a file", job, name)
		}
		if _, err := d.Export(t.Context(), job); err != nil {
			t.Fatal(err)
		}
	})
}
