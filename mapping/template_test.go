package mapping

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-health/vigil"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden is what a template made of a sample, as the golden files hold it.
type golden struct {
	Records  int             `json:"records"`
	Readings []goldenReading `json:"readings"`
	Refused  []goldenRefusal `json:"refused"`
	Skipped  []int           `json:"skipped"`
}

type goldenReading struct {
	Record int             `json:"record"`
	Rule   string          `json:"rule"`
	Item   json.RawMessage `json:"item"`
}

type goldenRefusal struct {
	Record int    `json:"record"`
	Reason string `json:"reason"`
}

func toGolden(t *testing.T, out *Output) []byte {
	t.Helper()
	g := golden{Records: out.Records, Readings: []goldenReading{}, Refused: []goldenRefusal{}, Skipped: out.Skipped}
	if g.Skipped == nil {
		g.Skipped = []int{}
	}
	for _, m := range out.Readings {
		b, err := json.Marshal(m.Item)
		if err != nil {
			t.Fatal(err)
		}
		g.Readings = append(g.Readings, goldenReading{Record: m.Record, Rule: m.Rule, Item: b})
	}
	for _, r := range out.Refused {
		g.Refused = append(g.Refused, goldenRefusal{Record: r.Record, Reason: vigil.ErrorMessage(r.Err)})
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestBuiltinGolden runs every shipped template over its sample in
// testdata (shaped as the vendor's documentation shows) and compares what
// it made with the golden file: each reading's item, each refused record
// and its reason, each skipped record. Run with -update to rewrite them
// after a deliberate change, and read the diff.
func TestBuiltinGolden(t *testing.T) {
	bs := Builtin()
	if len(bs) < 6 {
		t.Fatalf("%d shipped templates, want at least 6", len(bs))
	}
	for _, b := range bs {
		t.Run(b.Name, func(t *testing.T) {
			tpl, err := Compile(b.Name, 1, b.Spec, Limits{})
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if len(tpl.Spec.Docs) == 0 {
				t.Errorf("template %s cites no public document of its format", b.Name)
			}
			in, err := os.ReadFile(filepath.Join("testdata", b.Name+".input.json"))
			if err != nil {
				t.Fatalf("every shipped template needs a sample: %v", err)
			}
			out, err := tpl.Map(t.Context(), in, Limits{})
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			got := toGolden(t, out)
			path := filepath.Join("testdata", b.Name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed:\n got %s\nwant %s", path, got, want)
			}
			// Replaying a record alone makes what mapping it in its
			// message made: a record carries all it needs.
			for _, m := range out.Readings {
				alone, err := tpl.MapRecord(t.Context(), m.Record, m.Raw, Limits{})
				if err != nil {
					t.Fatalf("MapRecord(%d): %v", m.Record, err)
				}
				found := false
				for _, a := range alone.Readings {
					x, _ := json.Marshal(a.Item)
					y, _ := json.Marshal(m.Item)
					found = found || (a.Rule == m.Rule && bytes.Equal(x, y))
				}
				if !found {
					t.Errorf("record %d mapped alone did not make %s as in its message: %+v", m.Record, m.Rule, alone.Readings)
				}
			}
		})
	}
}
