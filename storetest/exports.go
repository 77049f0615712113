package storetest

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// RunExportFiles runs the suite of vigil.ExportFiles: jobs, their files
// (streamed, of several chunks), the size accounting, removal and
// erasure. open must return new, empty ExportFiles for each call, closed
// when its t ends; chunk is the implementation's unit of storage (0 if it
// has none), so that files across chunk boundaries are tested.
func RunExportFiles(t *testing.T, chunk int, open func(t *testing.T) vigil.ExportFiles) {
	if chunk <= 0 {
		chunk = 64 << 10
	}
	t.Run("Jobs", func(t *testing.T) { testExportJobs(t, open(t)) })
	t.Run("Files", func(t *testing.T) { testExportFileContent(t, open(t), chunk) })
	t.Run("Erase", func(t *testing.T) { testEraseExports(t, open(t), chunk) })
}

func newExportJob(id string) *vigil.ExportJob {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	return &vigil.ExportJob{ID: id, Node: "node-a", Owner: "usr_1", TokenID: "tok_1", Request: "https://x/fhir/r4/Patient/$export",
		Types: []string{"Patient", "Observation"}, Transaction: now, Updated: now, State: vigil.ExportRunning}
}

func testExportJobs(t *testing.T, s vigil.ExportFiles) {
	ctx := t.Context()
	if js, err := s.Exports(ctx); err != nil || len(js) != 0 {
		t.Fatalf("Exports of a new store = %v, %v; want none", js, err)
	}
	if _, err := s.Export(ctx, "exp_none"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("Export of a missing job: %v, want ENOTFOUND", err)
	}
	j := newExportJob("exp_b")
	if err := s.CreateExport(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExport(ctx, newExportJob("exp_b")); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("CreateExport of an existing id: %v, want ECONFLICT", err)
	}
	if err := s.CreateExport(ctx, newExportJob("exp_a")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Export(ctx, "exp_b")
	if err != nil || got.Owner != "usr_1" || got.TokenID != "tok_1" || got.Node != "node-a" || !slices.Equal(got.Types, j.Types) ||
		!got.Transaction.Equal(j.Transaction) || got.State != vigil.ExportRunning {
		t.Errorf("Export = %+v, %v; want %+v", got, err, j)
	}
	js, err := s.Exports(ctx)
	if err != nil || len(js) != 2 || js[0].ID != "exp_a" || js[1].ID != "exp_b" {
		t.Errorf("Exports = %v, %v; want exp_a, exp_b", js, err)
	}

	// Progress, then the outcome; a finished job takes no more updates.
	j.Written = 42
	if err := s.UpdateExport(ctx, j); err != nil {
		t.Fatal(err)
	}
	j.State, j.Outputs, j.Finished = vigil.ExportComplete, []vigil.ExportOutput{{Type: "Patient", Count: 3}}, j.Transaction.Add(time.Minute)
	j.Deid = []byte(`{"patients":3}`)
	if err := s.UpdateExport(ctx, j); err != nil {
		t.Fatal(err)
	}
	got, err = s.Export(ctx, "exp_b")
	if err != nil || got.Written != 42 || got.State != vigil.ExportComplete || len(got.Outputs) != 1 || got.Outputs[0] != j.Outputs[0] ||
		!got.Finished.Equal(j.Finished) || !strings.Contains(strings.ReplaceAll(string(got.Deid), " ", ""), `"patients":3`) {
		t.Errorf("Export after its outcome = %+v, %v", got, err)
	}
	if _, err := s.CreateExportFile(ctx, "exp_b", "Device.ndjson"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("CreateExportFile of a finished job: %v, want ENOTFOUND", err)
	}
	j.State = vigil.ExportRunning
	if err := s.UpdateExport(ctx, j); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("UpdateExport of a finished job: %v, want ENOTFOUND", err)
	}

	// Removal: gone, and updates and new files say so.
	a := newExportJob("exp_a")
	if err := s.RemoveExport(ctx, "exp_a"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveExport(ctx, "exp_a"); err != nil {
		t.Errorf("RemoveExport of a missing job: %v, want nil", err)
	}
	if err := s.UpdateExport(ctx, a); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("UpdateExport of a removed job: %v, want ENOTFOUND", err)
	}
	if _, err := s.CreateExportFile(ctx, "exp_a", "Patient.ndjson"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("CreateExportFile of a removed job: %v, want ENOTFOUND", err)
	}
	if js, err := s.Exports(ctx); err != nil || len(js) != 1 || js[0].ID != "exp_b" {
		t.Errorf("Exports after a removal = %v, %v", js, err)
	}
}

// exportContent is n bytes of NDJSON lines, the i-th naming pat_<i>.
func exportContent(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString(`{"resourceType":"Observation","subject":{"reference":"Patient/pat_` + strings.Repeat("x", i%7) + `"}}` + "\n")
	}
	return b.Bytes()[:n]
}

func writeExportFile(t *testing.T, s vigil.ExportFiles, job, name string, content []byte, step int) {
	t.Helper()
	w, err := s.CreateExportFile(t.Context(), job, name)
	if err != nil {
		t.Fatal(err)
	}
	for p := content; len(p) > 0; {
		k := min(step, len(p))
		if n, err := w.Write(p[:k]); err != nil || n != k {
			t.Fatalf("Write = %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func testExportFileContent(t *testing.T, s vigil.ExportFiles, chunk int) {
	ctx := t.Context()
	if err := s.CreateExport(ctx, newExportJob("exp_1")); err != nil {
		t.Fatal(err)
	}
	big := exportContent(2*chunk + chunk/3) // three chunks, the last partial
	small := exportContent(100)
	writeExportFile(t, s, "exp_1", "Observation.ndjson", big, 7000)
	writeExportFile(t, s, "exp_1", "Patient.ndjson", small, 1<<20)
	if _, err := s.CreateExportFile(ctx, "exp_1", "Patient.ndjson"); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("CreateExportFile of an existing file: %v, want ECONFLICT", err)
	}
	for _, bad := range []string{"../x", "a/b", ""} {
		if _, err := s.CreateExportFile(ctx, "exp_1", bad); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("CreateExportFile(%q): %v, want EINVALID", bad, err)
		}
	}
	if names, err := s.ExportFileNames(ctx, "exp_1"); err != nil || !slices.Equal(names, []string{"Observation.ndjson", "Patient.ndjson"}) {
		t.Errorf("ExportFileNames = %v, %v", names, err)
	}
	if n, err := s.ExportBytes(ctx); err != nil || n != int64(len(big)+len(small)) {
		t.Errorf("ExportBytes = %d, %v; want %d", n, err, len(big)+len(small))
	}

	f, err := s.OpenExportFile(ctx, "exp_1", "Observation.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != int64(len(big)) || f.ModTime().IsZero() {
		t.Errorf("Size, ModTime = %d, %v; want %d and a time", f.Size(), f.ModTime(), len(big))
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("ReadAll: %d bytes, %v; want the %d written", len(got), err, len(big))
	}
	// Seeks: into the second chunk, across a boundary, from the end.
	for _, tc := range []struct {
		off    int64
		whence int
		at, n  int
	}{{int64(chunk + 5), io.SeekStart, chunk + 5, 100}, {int64(chunk - 10), io.SeekStart, chunk - 10, 20}, {-30, io.SeekEnd, len(big) - 30, 30}} {
		pos, err := f.Seek(tc.off, tc.whence)
		if err != nil || pos != int64(tc.at) {
			t.Errorf("Seek(%d, %d) = %d, %v; want %d", tc.off, tc.whence, pos, err, tc.at)
			continue
		}
		buf := make([]byte, tc.n)
		if _, err := io.ReadFull(f, buf); err != nil || !bytes.Equal(buf, big[tc.at:tc.at+tc.n]) {
			t.Errorf("read at %d: %q, %v; want %q", tc.at, buf, err, big[tc.at:tc.at+tc.n])
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want io.EOF", n, err)
	}
	f.Close()
	if _, err := s.OpenExportFile(ctx, "exp_1", "Device.ndjson"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("OpenExportFile of a missing file: %v, want ENOTFOUND", err)
	}

	// A failed job keeps no files.
	if err := s.CreateExport(ctx, newExportJob("exp_2")); err != nil {
		t.Fatal(err)
	}
	writeExportFile(t, s, "exp_2", "Patient.ndjson", small, 10)
	fail := newExportJob("exp_2")
	fail.State, fail.ErrorCode, fail.Error = vigil.ExportFailed, vigil.ERATELIMITED, "over the budget"
	if err := s.UpdateExport(ctx, fail); err != nil {
		t.Fatal(err)
	}
	if names, err := s.ExportFileNames(ctx, "exp_2"); err != nil || len(names) != 0 {
		t.Errorf("files of a failed job: %v, %v; want none", names, err)
	}
	if j, err := s.Export(ctx, "exp_2"); err != nil || j.State != vigil.ExportFailed || j.ErrorCode != vigil.ERATELIMITED {
		t.Errorf("failed job = %+v, %v", j, err)
	}

	// Removal frees the space; a file being written when its job is
	// removed fails by its Close at the latest.
	w, err := s.CreateExportFile(ctx, "exp_1", "Device.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveExport(ctx, "exp_1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ExportBytes(ctx); err != nil || n != 0 {
		t.Errorf("ExportBytes after the removal = %d, %v; want 0", n, err)
	}
	if _, err := s.OpenExportFile(ctx, "exp_1", "Observation.ndjson"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("OpenExportFile of a removed job: %v, want ENOTFOUND", err)
	}
	if names, err := s.ExportFileNames(ctx, "exp_1"); err != nil || len(names) != 0 {
		t.Errorf("ExportFileNames of a removed job = %v, %v; want none", names, err)
	}
	w.Write(small)
	w.Close() // an error or not, as the implementation can tell; it must not store the file
	if n, err := s.ExportBytes(ctx); err != nil || n != 0 {
		t.Errorf("ExportBytes after a write to a removed job = %d, %v; want 0", n, err)
	}
}

func testEraseExports(t *testing.T, s vigil.ExportFiles, chunk int) {
	ctx := t.Context()
	const gone = "pat_gone_0123456789"
	// exp_1 names the patient across a chunk boundary of its second file;
	// exp_2 names another patient only; exp_3 names the patient and is
	// still running.
	for _, id := range []string{"exp_1", "exp_2", "exp_3"} {
		if err := s.CreateExport(ctx, newExportJob(id)); err != nil {
			t.Fatal(err)
		}
	}
	other := exportContent(chunk + 10)
	writeExportFile(t, s, "exp_1", "Device.ndjson", other, 4096)
	straddle := append(exportContent(chunk-20), []byte(`"Patient/`+gone+`"}`+"\n")...)
	writeExportFile(t, s, "exp_1", "Patient.ndjson", straddle, 4096)
	writeExportFile(t, s, "exp_2", "Patient.ndjson", []byte(`{"id":"pat_gone_012345678"}`+"\n"), 100)
	writeExportFile(t, s, "exp_3", "Observation.ndjson", []byte(`{"subject":"Patient/`+gone+`"}`+"\n"), 100)
	done := newExportJob("exp_1")
	done.State, done.Outputs, done.Finished = vigil.ExportComplete, []vigil.ExportOutput{{Type: "Patient", Count: 1}}, done.Transaction
	if err := s.UpdateExport(ctx, done); err != nil {
		t.Fatal(err)
	}

	n, err := s.EraseExports(ctx, gone)
	if err != nil || n != 2 {
		t.Fatalf("EraseExports = %d, %v; want 2 (exp_1, exp_3)", n, err)
	}
	for _, id := range []string{"exp_1", "exp_3"} {
		j, err := s.Export(ctx, id)
		if err != nil || j.State != vigil.ExportErased || len(j.Outputs) != 0 {
			t.Errorf("%s after the erasure = %+v, %v; want kept, erased, without outputs", id, j, err)
		}
		if names, err := s.ExportFileNames(ctx, id); err != nil || len(names) != 0 {
			t.Errorf("files of %s after the erasure: %v, %v; want none", id, names, err)
		}
		if _, err := s.OpenExportFile(ctx, id, "Patient.ndjson"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("OpenExportFile of %s after the erasure: %v, want ENOTFOUND", id, err)
		}
	}
	// The running job's node learns it was erased at its next update or
	// file.
	if err := s.UpdateExport(ctx, newExportJob("exp_3")); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("UpdateExport of an erased job: %v, want ENOTFOUND", err)
	}
	if _, err := s.CreateExportFile(ctx, "exp_3", "Device.ndjson"); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("CreateExportFile of an erased job: %v, want ENOTFOUND", err)
	}
	if names, err := s.ExportFileNames(ctx, "exp_2"); err != nil || len(names) != 1 {
		t.Errorf("files of an export of another patient: %v, %v; want kept", names, err)
	}
	if n, err := s.ExportBytes(ctx); err != nil || n != int64(len(`{"id":"pat_gone_012345678"}`+"\n")) {
		t.Errorf("ExportBytes after the erasure = %d, %v; want only exp_2's file", n, err)
	}
	if n, err := s.EraseExports(ctx, gone); err != nil || n != 0 {
		t.Errorf("EraseExports again = %d, %v; want 0", n, err)
	}
}
