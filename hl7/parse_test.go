package hl7

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil/catalog"
)

var update = flag.Bool("update", false, "write the golden files again")

func TestParseDelimitersAndLineEnds(t *testing.T) {
	for _, end := range []string{"\r", "\n", "\r\n", "\n\n"} {
		raw := strings.Join([]string{"MSH|^~\\&|A|B|||||ORU^R01|1|P|2.6", "PID|||x~y^^^Z", "", "OBX|1|NM"}, end)
		m, err := Parse([]byte(raw))
		if err != nil {
			t.Fatalf("line end %q: %v", end, err)
		}
		if len(m.Segments) != 3 || m.Segments[2].Name != "OBX" {
			t.Errorf("line end %q: segments %+v", end, m.Segments)
		}
		if got := m.Get(m.Segment("MSH"), 3, 0); got != "A" {
			t.Errorf("MSH-3 = %q", got)
		}
		if got := m.Get(m.Segment("MSH"), 1, 0); got != "|" {
			t.Errorf("MSH-1 = %q", got)
		}
		if got := m.Get(m.Segment("MSH"), 2, 0); got != "^~\\&" {
			t.Errorf("MSH-2 = %q", got)
		}
		reps := m.Delims.Repetitions(m.Segment("PID").Field(3))
		if len(reps) != 2 || m.Comp(reps[1], 4) != "Z" {
			t.Errorf("PID-3 repetitions = %q", reps)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, raw := range []string{
		"", "MSH", "PID|||1", "MSH|^~\\&", "MSH|^|A", "MSH|^^\\&|A", "MSH|a~\\&|A", "MSH||^~\\&|A", "MSH|^~\\&toolong|A",
	} {
		if _, err := Parse([]byte(raw)); !errors.Is(err, ErrNotHL7) {
			t.Errorf("Parse(%q) = %v, want ErrNotHL7", raw, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	m := &Message{Delims: DefaultDelimiters}
	tests := []struct{ in, want string }{
		{`plain`, "plain"},
		{`a\F\b`, "a|b"},
		{`a\S\b\T\c\R\d\E\e`, `a^b&c~d\e`},
		{`\X414243\`, "ABC"},
		{`\X4\`, `\X4\`},
		{`line\.br\two`, "line\ntwo"},
		{`\H\bold\N\`, "bold"},
		{`\Zcustom\`, `\Zcustom\`},
		{`open\F`, `open\F`},
		{`\C2842\x`, "x"},
	}
	for _, tc := range tests {
		if got := m.Unescape(tc.in); got != tc.want {
			t.Errorf("Unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if tc.in == tc.want {
			continue
		}
	}
	for _, s := range []string{"a|b^c~d\\e&f", "two\nlines"} {
		esc := DefaultDelimiters.EscapeText(s)
		if strings.ContainsAny(esc, "|^~&\n") || m.Unescape(esc) != s {
			t.Errorf("EscapeText(%q) = %q, unescaped %q", s, esc, m.Unescape(esc))
		}
	}
}

func TestParseTime(t *testing.T) {
	est := time.FixedZone("", -5*3600)
	tests := []struct {
		in   string
		zone *time.Location
		want time.Time
		bad  bool
	}{
		{"20261101120000", time.UTC, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), false},
		{"20261101120000", est, time.Date(2026, 11, 1, 17, 0, 0, 0, time.UTC), false},
		{"202611011200", time.UTC, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), false},
		{"20261101120000-0500", time.UTC, time.Date(2026, 11, 1, 17, 0, 0, 0, time.UTC), false},
		{"20261101120000+0130", time.UTC, time.Date(2026, 11, 1, 10, 30, 0, 0, time.UTC), false},
		{"20261101120000.25+0000", time.UTC, time.Date(2026, 11, 1, 12, 0, 0, 250_000_000, time.UTC), false},
		{"20261101120000.1234", time.UTC, time.Date(2026, 11, 1, 12, 0, 0, 123_400_000, time.UTC), false},
		{"20261101", time.UTC, time.Time{}, true},
		{"2026110112", time.UTC, time.Time{}, true},
		{"20261131120000", time.UTC, time.Time{}, true},
		{"20261101250000", time.UTC, time.Time{}, true},
		{"20261101120000+05", time.UTC, time.Time{}, true},
		{"202611011200.5", time.UTC, time.Time{}, true},
		{"2026-11-01T12:00:00Z", time.UTC, time.Time{}, true},
		{"", time.UTC, time.Time{}, true},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in, tc.zone)
		if tc.bad {
			if !errors.Is(err, ErrTime) {
				t.Errorf("ParseTime(%q) = %v, %v; want ErrTime", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// golden is what a test records of a sample: the header, the tree of
// every segment (fields → repetitions → components → subcomponents,
// unescaped), what the header check says, and the mapping.
type golden struct {
	Header   Header      `json:"header"`
	Check    string      `json:"check,omitempty"`
	Segments []goldenSeg `json:"segments"`
	Mapped   *goldenMap  `json:"mapped,omitempty"`
	Error    string      `json:"error,omitempty"`
}

type goldenSeg struct {
	Name   string         `json:"name"`
	Fields [][][][]string `json:"fields"`
}

type goldenMap struct {
	Patients     [][]PatientID `json:"patients"`
	Observations []Observation `json:"observations"`
	Refused      []string      `json:"refused"`
	Ignored      int           `json:"ignored"`
}

func makeGolden(raw []byte) golden {
	m, err := Parse(raw)
	if err != nil {
		return golden{Error: err.Error()}
	}
	g := golden{Header: m.Header()}
	if p := CheckHeader(g.Header); p != nil {
		g.Check = p.Error()
	}
	for _, s := range m.Segments {
		gs := goldenSeg{Name: s.Name}
		for n := 1; n < len(s.Fields); n++ {
			var reps [][][]string
			if s.Name == "MSH" && n <= 2 {
				reps = [][][]string{{{s.Fields[n]}}}
			} else {
				for _, rep := range m.Delims.Repetitions(s.Fields[n]) {
					var comps [][]string
					for _, c := range m.Delims.Components(rep) {
						var subs []string
						for _, sub := range m.Delims.Subcomponents(c) {
							subs = append(subs, m.Unescape(sub))
						}
						comps = append(comps, subs)
					}
					reps = append(reps, comps)
				}
			}
			gs.Fields = append(gs.Fields, reps)
		}
		g.Segments = append(g.Segments, gs)
	}
	mp := &Mapper{Codes: catalog.Default()}
	mapped := mp.Map(m)
	gm := &goldenMap{Patients: mapped.Patients, Observations: mapped.Observations, Ignored: mapped.Ignored, Refused: []string{}}
	for _, p := range mapped.Refused {
		gm.Refused = append(gm.Refused, p.Code+" "+p.Error())
	}
	g.Mapped = gm
	return g
}

// TestGoldenSamples parses and maps every sample message in testdata
// (PCD-01 samples written for Vigil, and messages shipped by npm
// packages) and compares with its .golden.json.
func TestGoldenSamples(t *testing.T) {
	files, _ := filepath.Glob("testdata/*/*.hl7")
	if len(files) < 10 {
		t.Fatalf("%d samples, want at least 10", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(makeGolden(raw), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			gf := strings.TrimSuffix(f, ".hl7") + ".golden.json"
			if *update {
				if err := os.WriteFile(gf, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", f, gf, got)
			}
		})
	}
}

// FuzzParse: no input makes Parse, Header, CheckHeader, Map or AppendAck
// panic, and every observation Map returns has a code and a time.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.hl7")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("MSH|^~\\&|A|B|||||ORU^R01|1|P|2.6\rPID|||1\rOBX|1|NM|8867-4^^LN|1.1|\\X4\\|/min|||||R|||202611011200\r"))
	mp := &Mapper{Codes: catalog.Default()}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			AppendAck(nil, DefaultDelimiters, Header{}, Ack{Code: AckReject, Problems: []*Problem{{Reason: err.Error()}}}, AckOptions{})
			return
		}
		h := m.Header()
		CheckHeader(h)
		out := mp.Map(m)
		for _, o := range out.Observations {
			if o.Item.Code == "" || o.Item.Time == "" || len(o.Segments) == 0 || o.Patient < 0 || o.Patient >= len(out.Patients) {
				t.Fatalf("observation %+v", o)
			}
		}
		ack := AppendAck(nil, m.Delims, h, Ack{Code: AckError, Problems: out.Refused, Text: "x"}, AckOptions{ControlID: "1"})
		if _, err := Parse(ack); err != nil {
			t.Fatalf("ACK %q does not parse: %v", ack, err)
		}
	})
}
