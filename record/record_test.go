package record_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/record"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sqlite"
)

// fixture is a store with one patient: a device, a consent, an alert and
// n readings, and another patient with readings of their own.
func fixture(t *testing.T, n int) (*record.Reader, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := sqlite.Open(t.Context(), filepath.Join(dir, "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	as, err := sqlite.OpenAlerts(t.Context(), filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { as.Close() })
	var ids []string
	for _, mrn := range []string{"R-1", "R-2"} {
		p := &vigil.Patient{Name: "Rec " + mrn, BirthDate: "1970-01-01", MRN: mrn}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
		t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		var rs []vigil.Reading
		for i := range n {
			at := t0.Add(time.Duration(i) * time.Minute)
			rs = append(rs, vigil.Reading{SubjectID: p.ID, Code: "8867-4", Value: 60 + float64(i%40), Unit: "/min", Time: at, Received: at,
				Key: "h:" + p.ID + ":" + at.Format(time.RFC3339)})
		}
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: rs}}); err != nil {
			t.Fatal(err)
		}
	}
	d := &vigil.Device{Kind: "pulse-oximeter", SubjectID: ids[0], TokenHash: []byte("h")}
	if err := s.CreateDevice(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetConsent(t.Context(), &vigil.Consent{SubjectID: ids[0], Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive}, ""); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	if err := as.SaveAlerts(t.Context(), vigil.AlertWrite{Alerts: []*vigil.Alert{{ID: "alr_1", SubjectID: ids[0], Key: "news2", Kind: "news2",
		Priority: vigil.PriorityHigh, State: vigil.AlertOpen, Message: "NEWS2 7", Opened: now, Updated: now}}}); err != nil {
		t.Fatal(err)
	}
	return &record.Reader{Source: s, Alerts: as, Encoder: fhir.Encoder{Codes: catalog.Default(), Interpret: rules.Interpreter{}},
		Base: "https://vigil.example/fhir/r4"}, ids[0]
}

// TestBundlePages walks every page of a record: the first starts with the
// Patient, Device, Consent and Flag; every Observation comes once, in
// time order, none of another patient; the last page has no next link.
func TestBundlePages(t *testing.T) {
	r, subject := fixture(t, 25)
	var after *vigil.Cursor
	var types []string
	var obs []string
	pages := 0
	for {
		var buf bytes.Buffer
		var next *vigil.Cursor
		err := r.WriteBundle(t.Context(), &buf, subject, after, 10, time.Now(), "self", func(c vigil.Cursor) string {
			next = &c
			return "next?_cursor=" + fhir.EncodeCursor(c)
		})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		var b fhir.BundleOut
		if err := json.Unmarshal(buf.Bytes(), &b); err != nil {
			t.Fatalf("page %d is not JSON: %v\n%s", pages, err, buf.String())
		}
		if b.ResourceType != "Bundle" || b.Type != "searchset" {
			t.Fatalf("page %d: %s %s", pages, b.ResourceType, b.Type)
		}
		for _, e := range b.Entry {
			var res struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Subject      *fhir.Reference
			}
			if err := json.Unmarshal(e.Resource, &res); err != nil {
				t.Fatal(err)
			}
			if pages == 1 && len(types) < 4 {
				types = append(types, res.ResourceType)
			}
			if res.ResourceType == "Observation" {
				if res.Subject.Reference != "Patient/"+subject {
					t.Errorf("an Observation of %s", res.Subject.Reference)
				}
				obs = append(obs, res.ID)
			}
			if !strings.HasSuffix(e.FullURL, "/"+res.ResourceType+"/"+res.ID) {
				t.Errorf("fullUrl %s for %s/%s", e.FullURL, res.ResourceType, res.ID)
			}
		}
		hasNext := len(b.Link) == 2 && b.Link[1].Relation == "next"
		if hasNext != (next != nil) {
			t.Fatalf("page %d: next link %v, cursor %v", pages, b.Link, next)
		}
		if next == nil {
			break
		}
		after = next
	}
	if want := []string{"Patient", "Device", "Consent", "Flag"}; !slices.Equal(types, want) {
		t.Errorf("first page starts with %v; want %v", types, want)
	}
	if pages != 3 || len(obs) != 25 {
		t.Errorf("%d pages, %d observations; want 3 pages (10, 10, 5) and 25", pages, len(obs))
	}
	seen := map[string]bool{}
	for _, id := range obs {
		if seen[id] {
			t.Errorf("observation %s twice", id)
		}
		seen[id] = true
	}
}

func TestUnknownPatient(t *testing.T) {
	r, _ := fixture(t, 1)
	var buf bytes.Buffer
	err := r.WriteBundle(t.Context(), &buf, "pat_none", nil, 10, time.Now(), "self", func(vigil.Cursor) string { return "" })
	if vigil.ErrorCode(err) != vigil.ENOTFOUND || buf.Len() != 0 {
		t.Errorf("WriteBundle(unknown) = %v, wrote %d bytes; want ENOTFOUND, nothing written", err, buf.Len())
	}
	if err := r.WriteZip(t.Context(), &buf, "pat_none", time.Now()); vigil.ErrorCode(err) != vigil.ENOTFOUND || buf.Len() != 0 {
		t.Errorf("WriteZip(unknown) = %v, wrote %d bytes; want ENOTFOUND, nothing written", err, buf.Len())
	}
}

// TestZip: the archive holds one NDJSON file per type, every reading of
// the patient (more than one page of the store's) and nothing of another.
func TestZip(t *testing.T) {
	n := 23
	r, subject := fixture(t, n)
	r.PageSize = 5 // five queries
	var buf bytes.Buffer
	if err := r.WriteZip(t.Context(), &buf, subject, time.Now()); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(rc)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if !strings.Contains(sc.Text(), subject) && f.Name != "Device.ndjson" && f.Name != "Flag.ndjson" {
				t.Errorf("%s: a line not about the patient: %s", f.Name, sc.Text())
			}
			lines[f.Name]++
		}
		rc.Close()
	}
	want := map[string]int{"Patient.ndjson": 1, "Device.ndjson": 1, "Consent.ndjson": 1, "Flag.ndjson": 1, "Observation.ndjson": n}
	for name, c := range want {
		if lines[name] != c {
			t.Errorf("%s: %d lines; want %d", name, lines[name], c)
		}
	}
}
