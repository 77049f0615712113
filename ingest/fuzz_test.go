package ingest

import (
	"context"
	"testing"
)

// FuzzSubmit feeds arbitrary bodies through decoding and validation: it must
// never panic, and every item is either accepted or quarantined.
func FuzzSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17}]}`,
		`{"readings":[{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}]}`,
		`{"readings":[{"code":"8310-5","value":98.6,"unit":"[degF]","time":"2026-11-20T09:59:00+01:00","flags":["artifact"]}]}`,
		`{"readings":[{"code":"8867-4","value":1e400}]}`,
		`{"readings":[{}, 1, "x", null, []]}`,
		`{"readings":null}`,
		`{`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, log := newService(t)
		res, err := s.Submit(context.Background(), deviceA, "http", body)
		if res == nil {
			t.Fatalf("nil result (err %v) with a working log", err)
		}
		if len(log.batches) != 1 {
			t.Fatalf("%d log writes, want 1", len(log.batches))
		}
		b := log.batches[0]
		if res.Accepted != len(b.Readings) || len(res.Rejected) != len(b.Quarantine) {
			t.Fatalf("result %+v does not match the batch written (%d readings, %d quarantined)", res, len(b.Readings), len(b.Quarantine))
		}
		for _, r := range b.Readings {
			if r.Key == "" || r.SubjectID == "" || r.Time.IsZero() {
				t.Fatalf("accepted reading lacks key, subject or time: %+v", r)
			}
		}
	})
}
