package sqlite_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// benchStart is the time of the first reading the benchmarks write.
func benchStart() time.Time { return time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC) }

// series writes n readings of subject, one per second from benchStart, in
// batches of size; code is chosen by codeOf(i), and panels (Unit "") get
// systolic and diastolic components.
func series(b *testing.B, s *sqlite.Store, subject string, n, size int, codeOf func(i int) string) {
	b.Helper()
	for start := 0; start < n; start += size {
		rs := make([]vigil.Reading, 0, size)
		for i := start; i < min(start+size, n); i++ {
			rs = append(rs, benchReading(subject, codeOf(i), i))
		}
		if _, err := s.WriteBatches(b.Context(), []vigil.Batch{{Readings: rs}}); err != nil {
			b.Fatalf("WriteBatches: %v", err)
		}
	}
}

// benchReading returns reading i of a 1 Hz series.
func benchReading(subject, code string, i int) vigil.Reading {
	t := benchStart().Add(time.Duration(i) * time.Second)
	r := vigil.Reading{
		SubjectID: subject,
		DeviceID:  "dev_bench",
		Code:      code,
		Value:     60 + float64(i%40),
		Unit:      "/min",
		Time:      t,
		Received:  t.Add(time.Second),
		Key:       fmt.Sprintf("%s/%s/%d", subject, code, i),
		Source:    "mqtt",
	}
	if code == "85354-9" {
		r.Unit, r.Value = "", 0
		r.Components = []vigil.Component{
			{Code: "8480-6", Value: 110 + float64(i%30), Unit: "mm[Hg]"},
			{Code: "8462-4", Value: 70 + float64(i%20), Unit: "mm[Hg]"},
		}
	}
	return r
}

func constCode(code string) func(int) string { return func(int) string { return code } }

// BenchmarkWriteBatches writes batches of 500 new heart rate readings, each
// batch in one call (one transaction), and reports readings per second.
func BenchmarkWriteBatches(b *testing.B) {
	const size = 500
	s := open(b)
	i := 0
	for b.Loop() {
		rs := make([]vigil.Reading, size)
		for j := range rs {
			rs[j] = benchReading("pat_bench", "8867-4", i)
			i++
		}
		if _, err := s.WriteBatches(b.Context(), []vigil.Batch{{Readings: rs}}); err != nil {
			b.Fatalf("WriteBatches: %v", err)
		}
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkWriteBatchesDevices writes as the store writer does under vigil
// bench: each transaction 64 log messages, one per device and patient, of
// 50 heart rates each, keyed as ingest keys sequence-numbered readings, so
// that every B-tree is appended to at 64 places.
func BenchmarkWriteBatchesDevices(b *testing.B) {
	const devices, size = 64, 50
	s := open(b)
	seq := 0
	for b.Loop() {
		bs := make([]vigil.Batch, devices)
		for d := range bs {
			rs := make([]vigil.Reading, size)
			for j := range rs {
				rs[j] = benchReading(fmt.Sprintf("pat_%02d", d), "8867-4", seq+j)
				rs[j].DeviceID = fmt.Sprintf("dev_%02d", d)
				rs[j].Key = fmt.Sprintf("d:dev_%02d:%d:%032x", d, seq+j+1, uint64(seq+j)*0x9e3779b97f4a7c15)
			}
			bs[d].Readings = rs
		}
		seq += size
		if _, err := s.WriteBatches(b.Context(), bs); err != nil {
			b.Fatalf("WriteBatches: %v", err)
		}
	}
	b.ReportMetric(float64(seq*devices)/b.Elapsed().Seconds(), "readings/s")
}

// BenchmarkBuckets summarises one day of a 1 Hz series (86,400 readings)
// in 500 buckets: stand-alone heart rates, and the systolic components of
// blood pressure panels. Other subjects' readings share the tables.
func BenchmarkBuckets(b *testing.B) {
	const day = 86400
	s := open(b)
	series(b, s, "pat_other", day/4, 5000, constCode("8867-4"))
	series(b, s, "pat_hr", day, 5000, constCode("8867-4"))
	series(b, s, "pat_bp", day, 5000, constCode("85354-9"))
	for _, bc := range []struct{ name, subject, code string }{
		{"reading", "pat_hr", "8867-4"},
		{"component", "pat_bp", "8480-6"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := vigil.BucketQuery{SubjectID: bc.subject, Code: bc.code,
				From: benchStart(), To: benchStart().Add(day * time.Second), Width: day * time.Second / 500}
			for b.Loop() {
				bs, err := s.Buckets(b.Context(), q)
				if err != nil {
					b.Fatalf("Buckets: %v", err)
				}
				if len(bs) != 500 {
					b.Fatalf("%d buckets, want 500", len(bs))
				}
			}
		})
	}
}

// BenchmarkReadingsPage reads the first page of 100 readings, newest first,
// of a subject with 1,000,000 readings of four codes: every code, one code,
// and two codes.
func BenchmarkReadingsPage(b *testing.B) {
	const n = 1_000_000
	codes := []string{"8867-4", "59408-5", "9279-1", "8310-5"}
	s := open(b)
	series(b, s, "pat_big", n, 10000, func(i int) string { return codes[i%len(codes)] })
	series(b, s, "pat_small", 1000, 1000, constCode("8867-4"))
	for _, bc := range []struct {
		name  string
		codes []string
	}{
		{"all", nil},
		{"one-code", codes[:1]},
		{"two-codes", codes[:2]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := vigil.ReadingQuery{SubjectID: "pat_big", Codes: bc.codes, Desc: true, Limit: 100}
			for b.Loop() {
				p, err := s.Readings(b.Context(), q)
				if err != nil {
					b.Fatalf("Readings: %v", err)
				}
				if len(p.Readings) != 100 || p.Next == nil {
					b.Fatalf("%d readings, Next %v", len(p.Readings), p.Next)
				}
			}
		})
	}
}

// BenchmarkRetentionBatch deletes expired readings in batches of 1,000
// (DeleteReadingsBefore, as the retention sweeper does) from a store of
// 20 subjects' 1 Hz heart rates, and reports the time one batch holds the
// writer.
func BenchmarkRetentionBatch(b *testing.B) {
	s := open(b)
	const subjects, perSubject = 20, 5000
	for i := range subjects {
		series(b, s, fmt.Sprintf("pat_%02d", i), perSubject, 1000, constCode("8867-4"))
	}
	cut := benchStart().Add(perSubject * time.Second) // everything
	n := 0
	b.ResetTimer()
	for b.Loop() {
		k, err := s.DeleteReadingsBefore(b.Context(), cut, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if k == 0 {
			b.StopTimer()
			for i := range subjects {
				series(b, s, fmt.Sprintf("pat_%02d_%d", i, n), perSubject, 1000, constCode("8867-4"))
			}
			b.StartTimer()
		}
		n += k
	}
	b.ReportMetric(float64(n)/float64(b.N), "readings/batch")
}
