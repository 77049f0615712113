package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vigil bench reports the end-to-end rate (stored and evaluated) beside
// the acknowledged one, and the store's and rules engine's lag, and writes
// the profiles it is asked for.
func TestBenchReportsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"bench", "--duration", "1s", "--rate", "0", "--day=false", "--devices", "2", "--batch", "5",
		"--json", "--cpuprofile", cpu, "--memprofile", mem}, func(string) string { return "" }, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("bench exited %d: %s", code, stderr.String())
	}
	var out struct {
		Ingest []benchResult `json:"ingest"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, stdout.String())
	}
	if len(out.Ingest) != 1 {
		t.Fatalf("%d phases, want 1: %s", len(out.Ingest), stdout.String())
	}
	r := out.Ingest[0]
	if r.Readings == 0 || r.EndToEnd == nil || r.CatchUpSeconds == nil || r.StoreLagEnd == nil || r.EngineLagEnd == nil ||
		r.StoreLagMax == nil || r.EngineLagMax == nil {
		t.Fatalf("max-throughput phase lacks the end-to-end figures: %s", stdout.String())
	}
	// Stored and evaluated after they were acknowledged: the end-to-end
	// rate counts the same readings over at least as long.
	if *r.EndToEnd <= 0 || *r.EndToEnd > r.PerSecond || *r.CatchUpSeconds < 0 {
		t.Errorf("end to end %v readings/s (acknowledged %v), caught up after %v s", *r.EndToEnd, r.PerSecond, *r.CatchUpSeconds)
	}
	if *r.StoreLagMax < *r.StoreLagEnd || *r.EngineLagMax < *r.EngineLagEnd {
		t.Errorf("lag at most %d/%d below lag at the end %d/%d", *r.StoreLagMax, *r.EngineLagMax, *r.StoreLagEnd, *r.EngineLagEnd)
	}
	for _, f := range []string{cpu, mem} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
}
