package deid_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
	"github.com/vigil-health/vigil/consent"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/rules"
	"github.com/vigil-health/vigil/sqlite"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func newDeid(t *testing.T, key []byte) *deid.Deidentifier {
	t.Helper()
	d, err := deid.NewDeidentifier(key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAgeBand(t *testing.T) {
	asOf := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ birth, want string }{
		{"2026-12-07", "0-4"},
		{"1986-12-07", "40-44"}, // 40 today
		{"1986-12-08", "35-39"}, // 40 tomorrow
		{"1937-01-01", "85-89"}, // 89
		{"1936-12-07", "90+"},   // 90 today
		{"1900-01-01", "90+"},
		{"2027-01-01", "unknown"}, // not born yet
		{"", "unknown"},
		{"1960-13-01", "unknown"},
	} {
		if got := deid.AgeBand(tc.birth, asOf); got != tc.want {
			t.Errorf("AgeBand(%q) = %q; want %q", tc.birth, got, tc.want)
		}
	}
}

// TestShiftAndResearchID: shifts are whole days within the bound, never
// zero, and differ between patients; research ids are stable for a key
// and change with it.
func TestShiftAndResearchID(t *testing.T) {
	d := newDeid(t, testKey)
	shifts := map[time.Duration]bool{}
	for i := range 500 {
		id := vigil.NewID(vigil.PrefixPatient)
		s := d.Shift(id)
		days := s / (24 * time.Hour)
		if s%(24*time.Hour) != 0 || days == 0 || days > deid.DefaultMaxShiftDays || days < -deid.DefaultMaxShiftDays {
			t.Fatalf("patient %d: shift %v; want whole days, 1 to %d either way", i, s, deid.DefaultMaxShiftDays)
		}
		shifts[s] = true
		if d.Shift(id) != s {
			t.Fatal("shift not stable")
		}
	}
	if len(shifts) < 200 {
		t.Errorf("500 patients had %d distinct shifts; want them spread", len(shifts))
	}
	again := newDeid(t, slices.Clone(testKey))
	other := newDeid(t, bytes.Repeat([]byte{8}, 32))
	if d.ResearchID("pat_x") != again.ResearchID("pat_x") || d.ResearchID("pat_x") == other.ResearchID("pat_x") {
		t.Error("research id must be the same under the same key and differ under another")
	}
	if d.ResearchID("pat_x") == d.ResearchID("pat_y") {
		t.Error("two patients share a research id")
	}
	if _, err := deid.NewDeidentifier(make([]byte, 16), 0); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

// source is a store with patients, readings and consents, and every
// string of identity and every time it holds, for the scan.
type source struct {
	s          *sqlite.Store
	consented  []string
	identities []string // names, MRNs, birth dates, ids, keys
	instants   []time.Time
}

func newSource(t *testing.T) *source {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	src := &source{s: s}
	c := &consent.Checker{Store: s, Directory: s}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	people := []struct {
		name, mrn, birth string
		research         bool
	}{
		{"Zebedee Quartermaine", "MRN-884211", "1931-03-14", true}, // 95: 90+
		{"Philippa Wolstenholme", "MRN-553917", "1984-07-02", true},
		{"Barnaby Featherstonehaugh", "MRN-201766", "1983-02-11", true},
		{"Ottoline Marchbanks", "MRN-730045", "1979-05-30", false}, // no research consent
	}
	for i, pp := range people {
		p := &vigil.Patient{Name: pp.name, MRN: pp.mrn, BirthDate: pp.birth}
		if err := s.CreatePatient(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		dev := "dev_" + strings.ToLower(pp.mrn[4:])
		src.identities = append(src.identities, pp.name, pp.mrn, pp.birth, p.ID, dev, "usr_nurse_"+pp.mrn[4:])
		var rs []vigil.Reading
		for j := range 3 {
			at := day.Add(time.Duration(8+j)*time.Hour + time.Duration(i)*time.Minute + 17*time.Second)
			key := "d:" + dev + ":" + string(rune('1'+j))
			r := vigil.Reading{SubjectID: p.ID, DeviceID: dev, Code: "8867-4", Value: float64(70 + j), Unit: "/min",
				Time: at, Received: at.Add(3 * time.Second), Key: key, Source: "mqtt"}
			if j == 2 {
				r.DeviceID, r.Key, r.Quality, r.Performer = "", "h:manual:"+pp.mrn, vigil.QualityManual, "usr_nurse_"+pp.mrn[4:]
			}
			src.identities = append(src.identities, r.Key)
			src.instants = append(src.instants, r.Time, r.Received)
			rs = append(rs, r)
		}
		rs = append(rs, vigil.Reading{SubjectID: p.ID, Code: "85354-9", Time: day.Add(12 * time.Hour), Received: day.Add(12*time.Hour + time.Second),
			Key: "news:" + p.ID, Components: []vigil.Component{{Code: "8480-6", Value: 120, Unit: "mm[Hg]"}, {Code: "8462-4", Value: 80, Unit: "mm[Hg]"}}})
		src.instants = append(src.instants, day.Add(12*time.Hour), day.Add(12*time.Hour+time.Second))
		if _, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: rs}}); err != nil {
			t.Fatal(err)
		}
		if pp.research {
			if _, err := c.Set(t.Context(), &vigil.Consent{SubjectID: p.ID, Purpose: vigil.ConsentResearch, Status: vigil.ConsentActive}, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	src.consented, err = c.ResearchSubjects(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// export runs an export of the consented patients into a directory and
// returns it with the manifest.
func (src *source) export(t *testing.T, minGroup int) (string, *deid.Manifest) {
	t.Helper()
	e, err := deid.NewExport(deid.Options{Deidentifier: newDeid(t, testKey), Encoder: fhir.Encoder{Codes: catalog.Default(), Interpret: rules.Interpreter{}},
		AsOf: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), MinGroup: minGroup})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	m, err := e.Run(t.Context(), src.s, src.consented, func(name string) (io.WriteCloser, error) {
		return os.Create(filepath.Join(dir, name))
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, m)
	}
	return out
}

// TestExportHoldsNoIdentity scans every byte of the export for every
// identity string of the source (names, MRNs, birth dates, patient,
// device and user ids, reading keys) and for every source time, written
// as FHIR writes instants, as a date, and as Unix seconds, and finds none.
func TestExportHoldsNoIdentity(t *testing.T) {
	src := newSource(t)
	dir, m := src.export(t, 0)
	var all []byte
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	lower := strings.ToLower(string(all))
	var needles []string
	for _, s := range src.identities {
		needles = append(needles, s)
		for _, part := range strings.Fields(s) { // each part of a name alone
			if len(part) > 3 {
				needles = append(needles, part)
			}
		}
	}
	for _, at := range src.instants {
		needles = append(needles, at.Format(time.RFC3339), at.Format("2006-01-02T15:04:05"), at.Format(time.DateOnly),
			at.Format("2006/01/02"), at.Format("20060102"))
		needles = append(needles, strings.TrimSuffix(strings.TrimSuffix(at.Format(time.RFC3339), "Z"), ":00"))
		needles = append(needles, jsonNumber(at.Unix()), jsonNumber(at.UnixMicro()), jsonNumber(at.UnixMilli()))
	}
	for _, n := range needles {
		if strings.Contains(lower, strings.ToLower(n)) {
			t.Errorf("the export holds %q of the source", n)
		}
	}
	if m.Patients != 3 || m.Observations != 12 {
		t.Errorf("manifest counts %d patients, %d observations; want 3 (with research consent) and 12", m.Patients, m.Observations)
	}
	if got := len(readLines(t, filepath.Join(dir, deid.FilePatients))); got != 3 {
		t.Errorf("%d research patients; want 3", got)
	}
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestExportKeepsIntervals: a patient's readings keep their intervals and
// times of day; the shift is whole days, the same for all of them.
func TestExportKeepsIntervals(t *testing.T) {
	src := newSource(t)
	dir, _ := src.export(t, 0)
	byPatient := map[string][]time.Time{}
	for _, o := range readLines(t, filepath.Join(dir, deid.FileObservations)) {
		subj := o["subject"].(map[string]any)["reference"].(string)
		at, err := time.Parse(time.RFC3339Nano, o["effectiveDateTime"].(string))
		if err != nil {
			t.Fatal(err)
		}
		byPatient[subj] = append(byPatient[subj], at)
		for _, k := range []string{"identifier", "issued", "device", "performer", "derivedFrom"} {
			if _, ok := o[k]; ok {
				t.Errorf("research Observation has %s", k)
			}
		}
	}
	if len(byPatient) != 3 {
		t.Fatalf("observations of %d patients; want 3", len(byPatient))
	}
	for subj, ts := range byPatient {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		// The source's intervals: 8:0i:17, 9:0i:17, 10:0i:17 and 12:00.
		if ts[1].Sub(ts[0]) != time.Hour || ts[2].Sub(ts[1]) != time.Hour {
			t.Errorf("%s: intervals %v, %v; want 1h, 1h as in the source", subj, ts[1].Sub(ts[0]), ts[2].Sub(ts[1]))
		}
		if ts[3].Hour() != 12 || ts[3].Minute() != 0 {
			t.Errorf("%s: time of day %v; want 12:00 as in the source", subj, ts[3])
		}
		if ts[0].Format(time.DateOnly) == "2026-11-20" {
			t.Errorf("%s: date not shifted", subj)
		}
	}
}

// TestKAnonymityReport: the manifest groups the exported patients by age
// band and names the smallest group; MinGroup withholds the small groups.
func TestKAnonymityReport(t *testing.T) {
	src := newSource(t)
	_, m := src.export(t, 0)
	want := []deid.Group{{AgeBand: "40-44", Patients: 2}, {AgeBand: "90+", Patients: 1}}
	if !slices.Equal(m.KAnonymity.Groups, want) || m.KAnonymity.SmallestGroup != 1 {
		t.Errorf("k-anonymity groups %+v, smallest %d; want %+v, smallest 1", m.KAnonymity.Groups, m.KAnonymity.SmallestGroup, want)
	}
	if !slices.Equal(m.KAnonymity.QuasiIdentifiers, []string{"age_band"}) {
		t.Errorf("quasi-identifiers %v; want [age_band]", m.KAnonymity.QuasiIdentifiers)
	}

	dir, m := src.export(t, 2)
	if m.Patients != 2 || m.Withheld != 1 || m.KAnonymity.SmallestGroup != 2 || m.Observations != 8 {
		t.Errorf("with MinGroup 2: %d patients, %d withheld, smallest group %d, %d observations; want 2, 1, 2, 8",
			m.Patients, m.Withheld, m.KAnonymity.SmallestGroup, m.Observations)
	}
	var manifest deid.Manifest
	b, err := os.ReadFile(filepath.Join(dir, deid.FileManifest))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.Format != deid.FormatVersion || len(manifest.Steps) == 0 || manifest.Withheld != 1 {
		t.Errorf("manifest.json = %+v; want the format, the steps and 1 withheld", manifest)
	}
}
