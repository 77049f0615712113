package ingest

import (
	"context"
	"reflect"
	"testing"

	"github.com/vigil-health/vigil"
)

// FuzzSubmit feeds arbitrary bodies through decoding and validation: it must
// never panic; every item is either accepted or quarantined; the keys
// reported are those of the readings logged; and readings sharing a key are
// the same reading, so the store skipping one of them drops nothing.
func FuzzSubmit(f *testing.F) {
	for _, seed := range []string{
		`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17}]}`,
		`{"readings":[{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}]}`,
		`{"readings":[{"code":"8310-5","value":98.6,"unit":"[degF]","time":"2026-11-20T09:59:00+01:00","flags":["artifact"]}]}`,
		`{"readings":[{"code":"8867-4","value":1e400}]}`,
		`{"readings":[{}, 1, "x", null, []]}`,
		`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":1},{"code":"8867-4","value":72,"unit":"bpm","time":"2026-11-20T09:59:00Z","seq":1},{"code":"8867-4","value":73,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":1}]}`,
		`{"readings":[{"code":"67775-7","value":1.5,"unit":"{score}","time":"2026-11-20T09:59:00Z"}]}`,
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
		byKey := map[string]vigil.Reading{}
		for i, r := range b.Readings {
			if r.Key == "" || r.SubjectID == "" || r.Time.IsZero() {
				t.Fatalf("accepted reading lacks key, subject or time: %+v", r)
			}
			if res.Keys[i] != r.Key {
				t.Fatalf("result key %d %q, logged %q", i, res.Keys[i], r.Key)
			}
			r.Quality &= keyedQuality // converted says how it was sent, not what
			if o, ok := byKey[r.Key]; ok && !reflect.DeepEqual(o, r) {
				t.Fatalf("two different readings share key %s:\n%+v\n%+v", r.Key, o, r)
			}
			byKey[r.Key] = r
		}
	})
}
