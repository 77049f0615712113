package alerting

import (
	"bytes"
	"compress/flate"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/rules"
)

// TestStateFormats: a state saved whole by an earlier version loads; saved
// in parts, checkpoint after checkpoint (deltas, then a new snapshot once
// they outgrow the last one), it loads as the state it was, and its next
// checkpoint goes on from the parts it loaded.
func TestStateFormats(t *testing.T) {
	cfg := rules.DefaultConfig()
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	feed := func(p *patient, from, n int) {
		for i := from; i < from+n; i++ {
			p.Rules.Apply(cfg, vigil.Reading{SubjectID: "pat_1", DeviceID: "dev_1", Code: rules.CodeHeartRate,
				Value: float64(60 + i%30), Unit: "/min", Time: at.Add(time.Duration(i) * time.Second), Key: fmt.Sprintf("d:dev_1:%d", i)})
		}
	}
	whole := func(p *patient) []byte {
		b, err := p.Rules.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// Saved whole (stateVersionWhole), as before.
	var old patient
	feed(&old, 0, 100)
	var buf bytes.Buffer
	buf.WriteByte(stateVersionWhole)
	zw, _ := flate.NewWriter(&buf, flate.NoCompression)
	fmt.Fprintf(zw, `{"rules":%s}`, whole(&old))
	zw.Close()
	got, err := decode("pat_1", buf.Bytes(), nil)
	if err != nil {
		t.Fatalf("decode whole: %v", err)
	}
	if !bytes.Equal(whole(got), whole(&old)) {
		t.Error("a state saved whole does not load as it was")
	}

	// In parts: the saved keys accumulate as a store keeps them.
	p := &patient{}
	p.Rules.TrackSeries()
	saved := map[string][]byte{}
	snapshots := 0
	for round := range 40 {
		feed(p, round*50, 50)
		out := map[string][]byte{}
		if err := p.encode("pat_1", out); err != nil {
			t.Fatal(err)
		}
		if _, ok := out[snapshotKey("pat_1")]; ok {
			snapshots++
		}
		for k, v := range out {
			saved[k] = v
		}
		back, err := decode("pat_1", saved["pat_1"], saved)
		if err != nil {
			t.Fatalf("round %d: decode: %v", round, err)
		}
		if !bytes.Equal(whole(back), whole(p)) {
			t.Fatalf("round %d: the state in parts does not load as it was", round)
		}
		if back.deltas != p.deltas || back.snapshot != p.snapshot || back.snapBytes != p.snapBytes || back.deltaBytes != p.deltaBytes {
			t.Fatalf("round %d: loaded bookkeeping %d/%v/%d/%d, saved %d/%v/%d/%d", round,
				back.deltas, back.snapshot, back.snapBytes, back.deltaBytes, p.deltas, p.snapshot, p.snapBytes, p.deltaBytes)
		}
		p = back // go on from what was loaded, as after a restart
	}
	if snapshots < 2 || snapshots > 20 {
		t.Errorf("%d snapshots in 40 checkpoints: want a few (the first, then as deltas outgrow them)", snapshots)
	}
	// A missing part is an error, not a silently shorter series.
	delete(saved, snapshotKey("pat_1"))
	if _, err := decode("pat_1", saved["pat_1"], saved); err == nil {
		t.Error("decode without the snapshot its head names succeeded")
	}
}
