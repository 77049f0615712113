package ingest

import (
	"bytes"
	"context"
	"encoding/json"
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

// FuzzItemDecode holds the hand-written decoder of the plain item form to
// encoding/json: whatever it accepts, encoding/json (with unknown fields
// refused, as Submit decodes) decodes without error to the same Item; it
// never panics.
func FuzzItemDecode(f *testing.F) {
	for _, seed := range []string{
		`{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17}`,
		`{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}`,
		` { "code" : "8310-5", "value": -9.86e1, "unit":"[degF]", "flags":["artifact", "questionable"], "device_id":"dev_1", "patient_id":"pat_1" } `,
		`{"code":"8867-4","value":1e400}`,
		`{"Code":"8867-4"}`,
		`{"code":"8867-4","code":"x"}`,
		`{"code":"\u00e9t\u00e9","unit":"é"}`,
		`{"seq":-1}`, `{"seq":1.0}`, `{"seq":18446744073709551616}`,
		`{"value":null}`, `{"flags":[]}`, `{"components":[{}]}`, `{}`, `[]`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fast Item
		ok := decodeItemFast(raw, &fast)
		if !ok || !json.Valid(raw) {
			return // Submit gives only valid JSON, and decodes what this refuses with encoding/json
		}
		var want Item
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("fast decoder accepted %q, encoding/json refuses it: %v", raw, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q:\nfast %+v\njson %+v", raw, fast, want)
		}
	})
}

// FuzzSplitBatch holds the hand-written splitter of the plain submission
// form to encoding/json: whatever it accepts, the encoding/json path of
// DecodeBatch accepts too and splits into the same items.
func FuzzSplitBatch(f *testing.F) {
	for _, seed := range []string{
		`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17}]}`,
		` { "readings" : [ {"a":"b\"]}"}, 1, -2.5e3, "x\\", true, null, [ [], {} ] ] } `,
		`{"readings":[]}`, `{"readings":null}`, `{"Readings":[1]}`, `{"readings":[1],"readings":[2]}`,
		`{"readings":[1],"x":2}`, `{"readings":[1]} {}`, `{"readings":[1]`, `{"readi\u006egs":[1]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := splitBatchFast(body)
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var env struct {
			Readings *[]json.RawMessage `json:"readings"`
		}
		if err := dec.Decode(&env); err != nil || dec.More() || env.Readings == nil || len(*env.Readings) == 0 {
			t.Fatalf("fast splitter accepted %q, encoding/json refuses it (%v)", body, err)
		}
		if _, err := dec.Token(); err == nil {
			t.Fatalf("fast splitter accepted %q with trailing data", body)
		}
		if !reflect.DeepEqual(fast, *env.Readings) {
			t.Fatalf("%q:\nfast %q\njson %q", body, fast, *env.Readings)
		}
	})
}
