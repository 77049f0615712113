package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

// open opens the main store on a fresh schema.
func open(t *testing.T) (*postgres.Store, string) {
	t.Helper()
	dsn := pgtest.DSN(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

// TestMigrateConcurrently opens the stores of one empty database from
// several goroutines at once, as nodes starting together would: the
// advisory lock makes each migration apply once, and every open succeeds.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				var s *postgres.Store
				if s, err = postgres.Open(t.Context(), dsn); err == nil {
					s.Close()
				}
			case 1:
				var s *postgres.AlertStore
				if s, err = postgres.OpenAlerts(t.Context(), dsn); err == nil {
					s.Close()
				}
			default:
				var s *postgres.AuditStore
				if s, err = postgres.OpenAudit(t.Context(), dsn); err == nil {
					s.Close()
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	conn := connect(t, dsn)
	var applied, distinct int
	if err := conn.QueryRow(t.Context(), "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied == 0 || applied != distinct {
		t.Errorf("schema_migrations has %d rows for %d versions; want each version once", applied, distinct)
	}
}

// TestNewerSchemaRefused: a database migrated by a newer Vigil (a version
// this one does not know) is refused rather than written to blindly.
func TestNewerSchemaRefused(t *testing.T) {
	s, dsn := open(t)
	v, err := s.SchemaVersion(t.Context())
	if err != nil || v < 1 {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES ($1, 'future.sql')", v+1); err != nil {
		t.Fatal(err)
	}
	if s2, err := postgres.Open(t.Context(), dsn); err == nil {
		s2.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func reading(subject string, n int, tm time.Time) vigil.Reading {
	return vigil.Reading{SubjectID: subject, DeviceID: "dev_1", Code: "8867-4", Value: float64(60 + n%40), Unit: "/min",
		Time: tm, Received: tm, Key: fmt.Sprintf("dev_1/%d", n), Source: "http"}
}

// TestPartitions: readings land in weekly partitions created on demand,
// MaintainPartitions creates the partitions ahead, and retention drops
// whole partitions older than it with their keys, latest values and
// roll-ups, leaving the rest.
func TestPartitions(t *testing.T) {
	s, dsn := open(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) // a Monday
	var rs []vigil.Reading
	for day := range 30 { // 30 days back from now, one reading a day
		rs = append(rs, reading("pat_a", day, now.Add(-time.Duration(day)*24*time.Hour)))
	}
	if n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: rs}}); err != nil || n != len(rs) {
		t.Fatalf("WriteBatches = %d, %v", n, err)
	}
	ps, err := s.Partitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
		if p.From.Weekday() != time.Monday || p.To.Sub(p.From) != postgres.PartitionWidth {
			t.Errorf("partition %s: [%s, %s), want a week from a Monday", p.Name, p.From, p.To)
		}
	}
	// 2026-11-07 … 2026-12-07: the weeks from Monday 2026-11-02.
	want := []string{"readings_20261102", "readings_20261109", "readings_20261116", "readings_20261123", "readings_20261130", "readings_20261207"}
	if !slices.Equal(names, want) {
		t.Fatalf("partitions %v, want %v", names, want)
	}

	// Each partition has the parent's indexes (created when attached).
	var idx int
	if err := connect(t, dsn).QueryRow(ctx, "SELECT count(*) FROM pg_indexes WHERE tablename = 'readings_20261207' AND schemaname = current_schema()").Scan(&idx); err != nil || idx != 4 {
		t.Errorf("readings_20261207 has %d indexes (%v), want the parent's 4", idx, err)
	}

	// Ahead: this week and the next two; nothing dropped without retention.
	dropped, err := s.MaintainPartitions(ctx, now, 0)
	if err != nil || len(dropped) != 0 {
		t.Fatalf("MaintainPartitions without retention = %v, %v", dropped, err)
	}
	if ps, _ = s.Partitions(ctx); ps[len(ps)-1].Name != "readings_20261221" {
		t.Errorf("last partition %s, want readings_20261221 (two weeks ahead)", ps[len(ps)-1].Name)
	}

	// Retention of 14 days: partitions that end on or before 2026-11-23
	// 12:00 go (those of 11-02 and 11-09); the one of 11-16, which ends
	// 11-23 00:00, too.
	dropped, err = s.MaintainPartitions(ctx, now, 14*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"readings_20261102", "readings_20261109", "readings_20261116"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	p, err := s.Readings(ctx, vigil.ReadingQuery{SubjectID: "pat_a"})
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var kept int
	for _, r := range rs {
		if !r.Time.Before(cut) {
			kept++
		}
	}
	if len(p.Readings) != kept || p.Readings[0].Time.Before(cut) {
		t.Errorf("after retention %d readings from %s, want %d from %s", len(p.Readings), p.Readings[0].Time, kept, cut)
	}
	// The keys of dropped readings are gone with them; the others stay.
	if _, err := s.ReadingByKey(ctx, rs[len(rs)-1].Key); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("ReadingByKey of a dropped reading: %v, want ENOTFOUND", err)
	}
	if _, err := s.ReadingByKey(ctx, rs[0].Key); err != nil {
		t.Errorf("ReadingByKey of a kept reading: %v", err)
	}
	bs, err := s.Buckets(ctx, vigil.BucketQuery{SubjectID: "pat_a", Code: "8867-4", From: now.Add(-60 * 24 * time.Hour).Truncate(time.Hour), To: now.Add(time.Hour), Width: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Start.Before(cut) {
			t.Errorf("roll-up bucket %s survives retention", b.Start)
		}
	}

	// A reading for a dropped week can be written again (a backfill): its
	// partition comes back.
	if n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: rs[len(rs)-1:]}}); err != nil || n != 1 {
		t.Errorf("WriteBatches into a dropped week = %d, %v; want 1", n, err)
	}
}

// TestPartitionRetentionKeepsLegalHold: retention by partition does not
// drop a week that holds readings of a patient under legal hold; the
// other patients' readings of that week go by DeleteReadingsBefore, the
// held patient's stay (with their latest value) until the hold is cleared,
// and the week is then dropped.
func TestPartitionRetentionKeepsLegalHold(t *testing.T) {
	s, _ := open(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) // a Monday
	for _, id := range []string{"pat_a", "pat_held"} {
		if err := s.CreatePatient(ctx, &vigil.Patient{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	var rs []vigil.Reading
	for day := range 30 {
		rs = append(rs, reading("pat_a", day, now.Add(-time.Duration(day)*24*time.Hour)))
	}
	held := reading("pat_held", 100, time.Date(2026, 11, 11, 8, 0, 0, 0, time.UTC)) // the week of 11-09
	rs = append(rs, held)
	if n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: rs}}); err != nil || n != len(rs) {
		t.Fatalf("WriteBatches = %d, %v", n, err)
	}
	if err := s.SetLegalHold(ctx, &vigil.LegalHold{SubjectID: "pat_held", Reason: "case 4", SetBy: "usr_a"}); err != nil {
		t.Fatal(err)
	}
	dropped, err := s.MaintainPartitions(ctx, now, 14*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"readings_20261102", "readings_20261116"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v with pat_held's week held, want %v", dropped, want)
	}
	if got, err := s.ReadingByKey(ctx, held.Key); err != nil || got.SubjectID != "pat_held" {
		t.Errorf("the held patient's reading after retention: %v, %v; want it kept", got, err)
	}
	if l, err := s.Latest(ctx, "pat_held"); err != nil || len(l) != 1 {
		t.Errorf("the held patient's latest values after retention: %v, %v; want kept", l, err)
	}
	// The rows of the kept week not held go by RetentionStore's deletes.
	cut := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	total := 0
	for {
		n, err := s.DeleteReadingsBefore(ctx, cut, 2)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total != 7 { // pat_a's week of 11-09
		t.Errorf("DeleteReadingsBefore deleted %d, want pat_a's 7 of the kept week", total)
	}
	p, err := s.Readings(ctx, vigil.ReadingQuery{SubjectID: "pat_held"})
	if err != nil || len(p.Readings) != 1 {
		t.Errorf("the held patient's readings: %d, %v; want 1", len(p.Readings), err)
	}
	// Hold cleared: the week goes at the next maintenance.
	if err := s.ClearLegalHold(ctx, "pat_held"); err != nil {
		t.Fatal(err)
	}
	if dropped, err = s.MaintainPartitions(ctx, now, 14*24*time.Hour); err != nil || !slices.Equal(dropped, []string{"readings_20261109"}) {
		t.Errorf("after the hold is cleared: dropped %v, %v; want readings_20261109", dropped, err)
	}
	if _, err := s.ReadingByKey(ctx, held.Key); vigil.ErrorCode(err) != vigil.ENOTFOUND {
		t.Errorf("the formerly held reading after its week was dropped: %v, want ENOTFOUND", err)
	}
}

// TestPartitionDroppedElsewhere: a partition dropped by another node (the
// store's memory of it stale) is created again on the next write.
func TestPartitionDroppedElsewhere(t *testing.T) {
	s, dsn := open(t)
	ctx := t.Context()
	tm := time.Date(2026, 1, 7, 0, 0, 0, 0, time.UTC)
	if _, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{reading("pat_a", 1, tm)}}}); err != nil {
		t.Fatal(err)
	}
	other, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if dropped, err := other.MaintainPartitions(ctx, tm.Add(365*24*time.Hour), 24*time.Hour); err != nil || len(dropped) == 0 {
		t.Fatalf("MaintainPartitions elsewhere = %v, %v", dropped, err)
	}
	if n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{reading("pat_a", 2, tm)}}}); err != nil || n != 1 {
		t.Errorf("WriteBatches after the partition was dropped elsewhere = %d, %v; want 1", n, err)
	}
}

// TestAuditWriterLock: one audit store at a time holds the writer's lock
// of a node's chain in a database, refused to a second with the same node
// ID (naming --node-id) and given to it once the first is closed; a store
// of another node takes its own lock meanwhile.
func TestAuditWriterLock(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := t.Context()
	openChain := func(node string) *postgres.AuditStore {
		s, err := postgres.OpenAudit(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		return s.Chain(node)
	}
	a, b, c := openChain("node-a"), openChain("node-a"), openChain("node-b")
	defer b.Close()
	defer c.Close()
	if err := a.LockWriter(ctx); err != nil {
		t.Fatalf("first LockWriter: %v", err)
	}
	err := b.LockWriter(ctx)
	if vigil.ErrorCode(err) != vigil.ECONFLICT || !strings.Contains(err.Error(), "--node-id") || !strings.Contains(err.Error(), "node-a") {
		t.Errorf("second LockWriter of node-a while the first holds it: %v, want ECONFLICT naming node-a and --node-id", err)
	}
	if err := c.LockWriter(ctx); err != nil {
		t.Errorf("LockWriter of node-b while node-a's is held: %v", err)
	}
	a.Close()
	if err := b.LockWriter(ctx); err != nil {
		t.Errorf("LockWriter after the holder closed: %v", err)
	}
}

// TestAuditAppendOnly: the audit table refuses UPDATE, DELETE and TRUNCATE,
// whoever asks, so that no code path changes the log by mistake.
func TestAuditAppendOnly(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, err := postgres.OpenAudit(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e := vigil.AuditEntry{Seq: 1, Time: time.Now(), Action: vigil.AuditSignIn, Outcome: vigil.AuditSuccess, Hash: []byte{1}}
	if err := a.AppendAudit(t.Context(), []vigil.AuditEntry{e}); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	for _, q := range []string{"UPDATE audit SET actor = 'x'", "DELETE FROM audit", "TRUNCATE audit"} {
		if _, err := conn.Exec(t.Context(), q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", q, err)
		}
	}
	if got, err := a.LastAudit(t.Context()); err != nil || got.Seq != 1 {
		t.Errorf("LastAudit = %+v, %v; want the entry unchanged", got, err)
	}
}

// TestErasureLeavesNoRow: after a patient's erasure runs to its end, no row
// of any table with a subject_id (the readings' partitions among them)
// names the patient, but the erasure's own record and the audit log (which
// keeps ids by design, docs/security.md); their identity row is gone and the devices once theirs are
// unassigned.
func TestErasureLeavesNoRow(t *testing.T) {
	s, dsn := open(t)
	ctx := t.Context()
	const pid = "pat_erased"
	if err := s.CreatePatient(ctx, &vigil.Patient{ID: pid, Name: "Erin Erased", MRN: "E-1"}); err != nil {
		t.Fatal(err)
	}
	dev := &vigil.Device{Kind: "oximeter", SubjectID: pid, TokenHash: []byte("token-of-erased")}
	if err := s.CreateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	team := &vigil.Team{Name: "ward 3"}
	if err := s.CreateTeam(ctx, team); err != nil {
		t.Fatal(err)
	}
	if err := s.EnrollPatient(ctx, team.ID, pid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConsent(ctx, &vigil.Consent{SubjectID: pid, Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive}, "usr_a"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var rs []vigil.Reading
	for i := range 25 {
		rs = append(rs, reading(pid, i, now.Add(-time.Duration(i)*20*time.Hour)))
	}
	rs = append(rs, reading("pat_other", 1000, now))
	if _, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: rs}}); err != nil {
		t.Fatal(err)
	}
	// A bulk export whose file names the patient (erasure.Service erases
	// exports with the store's ExportFiles).
	exports := s.ExportFiles()
	job := &vigil.ExportJob{ID: "exp_1", State: vigil.ExportRunning, Types: []string{"Patient"}}
	if err := exports.CreateExport(ctx, job); err != nil {
		t.Fatal(err)
	}
	w, err := exports.CreateExportFile(ctx, job.ID, "Patient.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, `{"resourceType":"Patient","id":%q}`+"\n", pid)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ShredPatient(ctx, pid, "usr_admin"); err != nil {
		t.Fatal(err)
	}
	if n, err := exports.EraseExports(ctx, pid); err != nil || n != 1 {
		t.Fatalf("EraseExports = %d, %v; want the one export", n, err)
	}
	for {
		n, err := s.DeleteSubjectData(ctx, pid, 7)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	// A reading still in the log when the patient was erased is skipped.
	late := reading(pid, 2000, now)
	if n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: []vigil.Reading{late}}}); err != nil || n != 0 {
		t.Errorf("WriteBatches of an erased patient's reading = %d, %v; want 0", n, err)
	}
	if err := s.CompleteErasure(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	rows, err := conn.Query(ctx, `SELECT DISTINCT table_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_name = 'subject_id' AND table_name NOT IN ('erasures', 'audit')
		AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 8 {
		t.Fatalf("tables with subject_id: %v, %v", tables, err)
	}
	for _, table := range append(tables, "patients") {
		col := "subject_id"
		if table == "patients" {
			col = "id"
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" WHERE "+col+" = $1", pid).Scan(&n); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows of the erased patient, want none", table, n)
		}
	}
	// No export file holds the patient's id, and the job records none.
	var chunks int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM export_chunks WHERE position(convert_to($1, 'UTF8') IN data) > 0", pid).Scan(&chunks); err != nil || chunks != 0 {
		t.Errorf("export chunks naming the erased patient: %d, %v; want none", chunks, err)
	}
	var jobs int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM export_jobs WHERE position($1 IN job::text) > 0", pid).Scan(&jobs); err != nil || jobs != 0 {
		t.Errorf("export jobs naming the erased patient: %d, %v; want none", jobs, err)
	}
	if j, err := exports.Export(ctx, job.ID); err != nil || j.State != vigil.ExportErased {
		t.Errorf("the export after the erasure: %+v, %v; want it marked erased", j, err)
	}
	if d, err := s.Device(ctx, dev.ID); err != nil || d.SubjectID != "" {
		t.Errorf("the erased patient's device: %+v, %v; want it unassigned", d, err)
	}
	if p, err := s.Readings(ctx, vigil.ReadingQuery{SubjectID: "pat_other"}); err != nil || len(p.Readings) != 1 {
		t.Errorf("another patient's readings after the erasure: %v, %v; want kept", p, err)
	}
	if err := s.CreatePatient(ctx, &vigil.Patient{ID: pid, Name: "Someone Else"}); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("CreatePatient with the erased id: %v, want ECONFLICT", err)
	}
}

// TestWriteDuringErasure: a store write that meets an erasure in progress
// waits for it and then leaves the erased patient's readings out, storing
// the others; the erasure is played by a transaction that holds the
// erasure lock and records the erasure, committed once the write waits.
func TestWriteDuringErasure(t *testing.T) {
	s, dsn := open(t)
	ctx := t.Context()
	conn := connect(t, dsn)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/vigil/erasure'))"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO erasures (subject_id, erased_by, erased, senders) VALUES ('pat_gone', 'usr_a', now(), '{}')"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	rs := []vigil.Reading{reading("pat_gone", 1, now), reading("pat_kept", 2, now), reading("pat_gone", 3, now.Add(time.Minute))}
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: rs}})
		res <- result{n, err}
	}()
	// Wait until the write waits for the erasure lock.
	watch := connect(t, dsn)
	for {
		var waiting bool
		if err := watch.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case r := <-res:
			t.Fatalf("WriteBatches returned (%d, %v) before the erasure committed", r.n, r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.n != 1 {
		t.Fatalf("WriteBatches during an erasure = %d, %v; want 1 (the other patient's)", r.n, r.err)
	}
	for _, sub := range []string{"pat_gone", "pat_kept"} {
		p, err := s.Readings(ctx, vigil.ReadingQuery{SubjectID: sub})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"pat_gone": 0, "pat_kept": 1}[sub]; len(p.Readings) != want {
			t.Errorf("%s: %d readings stored, want %d", sub, len(p.Readings), want)
		}
	}
}
