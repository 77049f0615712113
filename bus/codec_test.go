package bus

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// sampleBatch exercises every field, with times at nanosecond precision in
// a non-UTC zone.
func sampleBatch() vigil.Batch {
	zone := time.FixedZone("CET", 3600)
	t := time.Date(2025, 3, 14, 15, 9, 26, 535897932, zone)
	return vigil.Batch{
		Readings: []vigil.Reading{
			{
				ID: 42, SubjectID: "pat_0123", DeviceID: "dev_4567", Code: "8867-4",
				Value: 72, Unit: "/min", Time: t, Received: t.Add(time.Second),
				Key: "dev_4567/17", Quality: vigil.QualityQuestionable | vigil.QualityConverted, Source: "http",
			},
			{
				SubjectID: "pat_0123", Code: "85354-9", Time: t,
				Components: []vigil.Component{
					{Code: "8480-6", Value: 120.5, Unit: "mm[Hg]"},
					{Code: "8462-4", Value: -0.25, Unit: "mm[Hg]"},
				},
				Source: "manual",
			},
			{ID: -1, Value: math.Inf(-1), Key: "ünïcødé ✓"},
		},
		Quarantine: []vigil.QuarantineItem{
			{
				ID: "qua_1", Received: t, Source: "hl7", Sender: "dev_9", Index: -1,
				Reason: "bad segment", Code: vigil.EINVALID, Payload: []byte{0, 1, 0xff, '\r', 'M', 'S', 'H'}, Truncated: true,
			},
			{ID: "qua_2", Index: 3, Payload: []byte{}},
			{ID: "qua_3"},
		},
	}
}

// normalized returns b as it is expected back from the log: times at
// microsecond precision in UTC.
func normalized(b vigil.Batch) vigil.Batch {
	norm := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	var out vigil.Batch
	for _, r := range b.Readings {
		r.Time, r.Received = norm(r.Time), norm(r.Received)
		out.Readings = append(out.Readings, r)
	}
	for _, q := range b.Quarantine {
		q.Received = norm(q.Received)
		out.Quarantine = append(out.Quarantine, q)
	}
	for _, st := range b.Statuses {
		st.Time = norm(st.Time)
		out.Statuses = append(out.Statuses, st)
	}
	return out
}

func TestCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		batch vigil.Batch
	}{
		{"sample", sampleBatch()},
		{"quarantine with template", vigil.Batch{Quarantine: []vigil.QuarantineItem{
			{ID: "qua_4", Source: "mapping", Index: 2, Payload: []byte(`{"sgv":"x"}`), Template: "nightscout-entries", TemplateVersion: 3},
			{ID: "qua_5", Source: "mapping", Index: -1, Template: "t"},
		}}},
		{"empty", vigil.Batch{}},
		{"zero values", vigil.Batch{Readings: []vigil.Reading{{}}, Quarantine: []vigil.QuarantineItem{{}}, Statuses: []vigil.StatusReport{{}}}},
		{"derived readings", vigil.Batch{Readings: []vigil.Reading{
			{SubjectID: "pat_1", Code: "1104051000000101", Value: 12, Unit: "{score}", Time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
				Key: "derived:news2:pat_1:1", Quality: vigil.QualityDerived | vigil.QualityQuestionable, Source: "derived",
				Derivation: &vigil.Derivation{From: []string{"d:a:1", "d:b:2"}, Missing: []string{"oxygen"}, Stale: []string{"consciousness", "temperature"}}},
			{Key: "plain"},
			{Key: "empty derivation", Derivation: &vigil.Derivation{}},
		}}},
		{"performer", vigil.Batch{Readings: []vigil.Reading{
			{SubjectID: "pat_1", Code: "67775-7", Value: 1, Unit: "{score}", Key: "h:1", Quality: vigil.QualityManual, Source: "manual", Performer: "usr_1"},
			{SubjectID: "pat_1", Code: "8867-4", Value: 70, Unit: "/min", Key: "d:1", Source: "mqtt"},
		}}},
		{"status reports", vigil.Batch{Statuses: []vigil.StatusReport{
			{DeviceID: "dev_1", SubjectID: "pat_1", Time: time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC), Battery: ptr(12.5), Sensor: "off-finger"},
			{DeviceID: "dev_2", Battery: ptr(0.0)},
			{DeviceID: "dev_3", Sensor: "ok"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeBatch(encodeBatch(&tt.batch))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if want := normalized(tt.batch); !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\ngot  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestCodecPreservesNilPayload(t *testing.T) {
	b := vigil.Batch{Quarantine: []vigil.QuarantineItem{{Payload: nil}, {Payload: []byte{}}}}
	got, err := decodeBatch(encodeBatch(&b))
	if err != nil {
		t.Fatal(err)
	}
	if got.Quarantine[0].Payload != nil || got.Quarantine[1].Payload == nil {
		t.Errorf("payloads = %#v, %#v; want nil, non-nil empty", got.Quarantine[0].Payload, got.Quarantine[1].Payload)
	}
}

func TestCodecNaN(t *testing.T) {
	b := vigil.Batch{Readings: []vigil.Reading{{Value: math.NaN()}}}
	got, err := decodeBatch(encodeBatch(&b))
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Readings[0].Value; !math.IsNaN(v) {
		t.Errorf("Value = %v, want NaN", v)
	}
}

// Concatenated records of several batches decode as the merged batch: group
// commit depends on it.
func TestCodecMergeByConcatenation(t *testing.T) {
	a, b := sampleBatch(), vigil.Batch{Readings: []vigil.Reading{{Code: "59408-5", Value: 97, Unit: "%"}}}
	msg := []byte{formatV1}
	msg, _ = encodeRecords(msg, &a)
	msg, _ = encodeRecords(msg, &b)
	got, err := decodeBatch(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := normalized(a)
	want.Readings = append(want.Readings, normalized(b).Readings...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merged:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestEncodeRecordEnds(t *testing.T) {
	b := sampleBatch()
	data, ends := encodeRecords(nil, &b)
	if got, want := len(ends), len(b.Readings)+len(b.Quarantine); got != want {
		t.Fatalf("len(ends) = %d, want %d", got, want)
	}
	if ends[len(ends)-1] != len(data) {
		t.Errorf("last end = %d, want %d", ends[len(ends)-1], len(data))
	}
	// Every prefix ending at a record end is a valid message.
	for _, end := range ends {
		if _, err := decodeBatch(append([]byte{formatV1}, data[:end]...)); err != nil {
			t.Errorf("prefix up to %d: %v", end, err)
		}
	}
}

// The encoding is the on-disk format: it must not change by accident.
func TestCodecGolden(t *testing.T) {
	b := sampleBatch()
	got := hex.Dump(encodeBatch(&b))
	path := filepath.Join("testdata", "v1.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("encoding changed; if intended, bump the format version and run with -update\ngot:\n%s", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	b := sampleBatch()
	good := encodeBatch(&b)
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "empty"},
		{"unknown version", []byte{2}, "version"},
		{"unknown tag", []byte{1, 9, 0}, "tag"},
		{"truncated record", good[:len(good)-1], "truncated"},
		{"record length overflow", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "truncated"},
		{"trailing bytes in record", []byte{1, 2, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}, "trailing"},
		// A zero quarantine item is 7 zero bytes, flags, payload length.
		{"bad flags", []byte{1, 2, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0}, "flags"},
		// A zero status report is 3 zero bytes, flags, sensor length.
		{"bad status flags", []byte{1, 3, 5, 0, 0, 0, 0x02, 0}, "status flags"},
		{"payload without flag", []byte{1, 2, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}, "payload"},
		// A zero reading is 17 bytes before the component count.
		// A zero derived reading is a zero reading (19 bytes) and three
		// list lengths.
		{"derivation list too long", []byte{1, 4, 22, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0, 0}, "string count"},
		{"component count too large", []byte{1, 1, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x7f, 0}, "component"},
		// A zero reading ends after 19 bytes; a performer is never empty.
		{"empty performer", []byte{1, 1, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "performer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeBatch(tt.data)
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("err = %v, want errCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

// FuzzDecode checks that decoding never panics and that whatever decodes
// re-encodes canonically: encode(decode(x)) decodes to the same encoding.
func FuzzDecode(f *testing.F) {
	b := sampleBatch()
	f.Add(encodeBatch(&b))
	f.Add(encodeBatch(&vigil.Batch{Readings: []vigil.Reading{{Key: "k", Derivation: &vigil.Derivation{From: []string{"a"}, Stale: []string{"spo2"}}}}}))
	f.Add([]byte{formatV1})
	f.Fuzz(func(t *testing.T, data []byte) {
		batch, err := decodeBatch(data)
		if err != nil {
			return
		}
		enc := encodeBatch(&batch)
		again, err := decodeBatch(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if enc2 := encodeBatch(&again); !bytes.Equal(enc, enc2) {
			t.Fatalf("not canonical:\n%x\n%x", enc, enc2)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// BenchmarkDecodeBatch decodes one message of 50 heart rates of one device,
// as each log consumer does for each request `vigil bench` sends.
func BenchmarkDecodeBatch(b *testing.B) {
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	var batch vigil.Batch
	for i := range 50 {
		batch.Readings = append(batch.Readings, vigil.Reading{SubjectID: "pat_01JDZ3Q8X7K2M4N5P6R7S8T9V0", DeviceID: "dev_01JDZ3Q8X7K2M4N5P6R7S8T9V1",
			Code: "8867-4", Value: float64(60 + i), Unit: "/min", Time: t0.Add(time.Duration(i) * time.Millisecond), Received: t0,
			Key: fmt.Sprintf("d:dev_01JDZ3Q8X7K2M4N5P6R7S8T9V1:%d:0123456789abcdef0123456789abcdef", i), Source: "http"})
	}
	data := encodeBatch(&batch)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}
