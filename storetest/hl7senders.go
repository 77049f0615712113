package storetest

import (
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
)

// testHL7Senders: a sender is found by its exact application and facility;
// the pair is unique; the list is ordered by application, then facility.
func testHL7Senders(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	ctx := t.Context()
	if got, err := s.HL7Senders(ctx); err != nil || len(got) != 0 {
		t.Fatalf("HL7Senders of an empty store = %v, %v", got, err)
	}
	a := &vigil.HL7Sender{Application: "MONITOR", Facility: "WARD7", AssigningAuthority: "HOSP"}
	if err := s.CreateHL7Sender(ctx, a); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.ID, vigil.PrefixHL7Sender+"_") || a.Created.IsZero() {
		t.Errorf("created sender = %+v: want an id and a creation time", a)
	}
	for _, other := range []*vigil.HL7Sender{{Application: "MONITOR", Facility: "WARD6"}, {Application: "GATEWAY"}} {
		if err := s.CreateHL7Sender(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateHL7Sender(ctx, &vigil.HL7Sender{Application: "MONITOR", Facility: "WARD7"}); vigil.ErrorCode(err) != vigil.ECONFLICT {
		t.Errorf("the same application and facility again: %v, want %s", err, vigil.ECONFLICT)
	}
	if err := s.CreateHL7Sender(ctx, &vigil.HL7Sender{Facility: "WARD7"}); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("no application: %v, want %s", err, vigil.EINVALID)
	}
	got, err := s.HL7Sender(ctx, "MONITOR", "WARD7")
	if err != nil || got.ID != a.ID || got.AssigningAuthority != "HOSP" || !got.Created.Equal(a.Created) {
		t.Errorf("HL7Sender(MONITOR, WARD7) = %+v, %v; want %+v", got, err, a)
	}
	for _, k := range [][2]string{{"monitor", "WARD7"}, {"MONITOR", ""}, {"MONITOR", "WARD"}, {"GATEWAY", "X"}} {
		if _, err := s.HL7Sender(ctx, k[0], k[1]); vigil.ErrorCode(err) != vigil.ENOTFOUND {
			t.Errorf("HL7Sender(%q, %q): %v, want %s", k[0], k[1], err, vigil.ENOTFOUND)
		}
	}
	if g, err := s.HL7Sender(ctx, "GATEWAY", ""); err != nil || g.Facility != "" {
		t.Errorf("HL7Sender(GATEWAY, \"\") = %+v, %v", g, err)
	}
	list, err := s.HL7Senders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Application+"^"+l.Facility)
	}
	if want := "GATEWAY^ MONITOR^WARD6 MONITOR^WARD7"; strings.Join(names, " ") != want {
		t.Errorf("HL7Senders = %v, want %s", names, want)
	}
}
