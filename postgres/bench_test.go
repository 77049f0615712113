package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/sqlite"
)

// benchStart is the time of the first reading the benchmarks write.
var benchStart = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

// benchCodes are the codes of the write benchmark's patients: four vital
// signs and a blood pressure panel, the mix of a bedside monitor.
var benchCodes = []string{"8867-4", "59408-5", "9279-1", "8310-5", "85354-9"}

// benchReading returns reading i of the write benchmark: patients take
// turns, each sending its five codes once a second.
func benchReading(patients, i int) vigil.Reading {
	p := i % patients
	code := benchCodes[(i/patients)%len(benchCodes)]
	sec := i / (patients * len(benchCodes))
	t := benchStart.Add(time.Duration(sec) * time.Second)
	subject := fmt.Sprintf("pat_%05d", p)
	r := vigil.Reading{SubjectID: subject, DeviceID: "dev_" + subject[4:], Code: code, Value: 60 + float64(i%40), Unit: "/min",
		Time: t, Received: t.Add(time.Second), Key: fmt.Sprintf("dev_%s/%d", subject[4:], i), Source: "mqtt"}
	if code == "85354-9" {
		r.Unit, r.Value = "", 0
		r.Components = []vigil.Component{{Code: "8480-6", Value: 110 + float64(i%30), Unit: "mm[Hg]"}, {Code: "8462-4", Value: 70, Unit: "mm[Hg]"}}
	}
	return r
}

// benchPatients is how many patients the write benchmark's readings come
// from: 30,000 patients sending five codes once a second are 150,000
// readings/s, the target rate.
const benchPatients = 30_000

// benchCall returns the batches of one WriteBatches call of size readings
// from reading number first on, as the log hands them to the store writer:
// batches of 100 (one per group commit).
func benchCall(first, size int) []vigil.Batch {
	bs := make([]vigil.Batch, 0, (size+99)/100)
	for i := first; i < first+size; i += 100 {
		rs := make([]vigil.Reading, 0, 100)
		for j := i; j < min(i+100, first+size); j++ {
			rs = append(rs, benchReading(benchPatients, j))
		}
		bs = append(bs, vigil.Batch{Readings: rs})
	}
	return bs
}

// warmUp writes one reading of every patient and code (one second of the
// benchmark's load), so that the timed writes find the latest values and
// roll-ups of every patient in place, as a running node does; it returns
// the number of the next reading.
func warmUp(b *testing.B, s *postgres.Store) int {
	b.Helper()
	n := benchPatients * len(benchCodes)
	for i := 0; i < n; i += 10000 {
		if _, err := s.WriteBatches(b.Context(), benchCall(i, min(10000, n-i))); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// BenchmarkWriteBatches measures the store writer's path: WriteBatches
// calls of the given number of readings (the log hands the writer up to
// its fetch size of batches at a time), from 30,000 patients sending five
// codes each (one in five a blood pressure panel with two components), one
// call after another as the store writer makes them, after a warm-up second
// of every patient. The batches are built outside the timing. It reports readings per second.
func BenchmarkWriteBatches(b *testing.B) {
	for _, size := range []int{1000, 5000, 20000} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			s, err := postgres.Open(b.Context(), pgtest.DSN(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			i, stored := warmUp(b, s), 0
			for b.Loop() {
				b.StopTimer()
				bs := benchCall(i, size)
				i += size
				b.StartTimer()
				n, err := s.WriteBatches(b.Context(), bs)
				if err != nil {
					b.Fatal(err)
				}
				stored += n
			}
			b.ReportMetric(float64(stored)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkWriteBatchesParallel is BenchmarkWriteBatches with calls of
// 5,000 readings from two writers at once (GOMAXPROCS goroutines), as
// store writers sharing a work queue would make them; building the batches
// is inside the timing here.
func BenchmarkWriteBatchesParallel(b *testing.B) {
	const size = 5000
	s, err := postgres.Open(b.Context(), pgtest.DSN(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var next, stored atomic.Int64
	next.Store(int64(warmUp(b, s)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			first := int(next.Add(size)) - size
			n, err := s.WriteBatches(context.Background(), benchCall(first, size))
			if err != nil {
				b.Error(err)
				return
			}
			stored.Add(int64(n))
		}
	})
	b.ReportMetric(float64(stored.Load())/b.Elapsed().Seconds(), "readings/s")
}

// fhirBenchN is the number of observations of the FHIR benchmark's patient
// (VIGIL_FHIR_BENCH_N changes it).
func fhirBenchN(b *testing.B) int {
	if v := os.Getenv("VIGIL_FHIR_BENCH_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// BenchmarkFHIRFirstPage measures the store query behind the first page of
// a FHIR Observation search (_count=100, _sort=-date, and the same with a
// code) on a patient with 1,000,000 observations: ten codes, one reading
// every 30 s per code (about 35 days, six weekly partitions), beside 1,000
// other patients' readings. The rows are loaded with COPY straight into the
// tables (the write path has its own benchmark).
func BenchmarkFHIRFirstPage(b *testing.B) {
	n := fhirBenchN(b)
	dsn := pgtest.DSN(b)
	s, err := postgres.Open(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	loadObservations(b, s, dsn, "pat_big", n)

	b.Run("by-id", func(b *testing.B) {
		// FHIR read of one Observation: GET Observation/{id}.
		for b.Loop() {
			if _, err := s.Reading(b.Context(), int64(1_000_000_000+n/2)); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		q    vigil.ReadingQuery
	}{
		{"newest", vigil.ReadingQuery{SubjectID: "pat_big", Desc: true, Limit: 100}},
		{"oldest", vigil.ReadingQuery{SubjectID: "pat_big", Limit: 100}},
		{"code", vigil.ReadingQuery{SubjectID: "pat_big", Codes: []string{"8867-4"}, Desc: true, Limit: 100}},
		{"two-codes", vigil.ReadingQuery{SubjectID: "pat_big", Codes: []string{"8867-4", "59408-5"}, Desc: true, Limit: 100}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var p vigil.ReadingPage
			for b.Loop() {
				if p, err = s.Readings(b.Context(), tc.q); err != nil {
					b.Fatal(err)
				}
			}
			if len(p.Readings) != 100 || p.Next == nil {
				b.Fatalf("first page: %d readings, next %v", len(p.Readings), p.Next)
			}
			// The next page, by the cursor, as the FHIR next link asks.
			q := tc.q
			q.After = p.Next
			if p2, err := s.Readings(b.Context(), q); err != nil || len(p2.Readings) != 100 {
				b.Fatalf("second page: %d, %v", len(p2.Readings), err)
			}
		})
	}
}

// fhirEvery is the interval of each code's readings in the FHIR
// benchmark, in seconds.
const fhirEvery = 30

// fhirCodes are the ten codes of the FHIR benchmark's patient.
var fhirCodes = []string{"8867-4", "59408-5", "9279-1", "8310-5", "8480-6", "8462-4", "29463-7", "2339-0", "8302-2", "39156-5"}

// loadObservations loads n readings of subject and 100,000 of other
// patients with COPY, creating their partitions first, then analyses.
func loadObservations(b *testing.B, s *postgres.Store, dsn, subject string, n int) {
	b.Helper()
	ctx := b.Context()
	start := benchStart.Add(-time.Duration(n/len(fhirCodes)*fhirEvery) * time.Second)
	// Partitions for the whole span, as the writer would create them.
	first := []vigil.Reading{{SubjectID: subject, Code: "x", Key: "first", Time: start, Unit: "1"}}
	last := []vigil.Reading{{SubjectID: subject, Code: "x", Key: "last", Time: benchStart.Add(time.Hour), Unit: "1"}}
	for t := start; t.Before(benchStart.Add(8 * 24 * time.Hour)); t = t.Add(postgres.PartitionWidth) {
		first = append(first, vigil.Reading{SubjectID: "pat_none", Code: "x", Key: "p" + t.String(), Time: t, Unit: "1"})
	}
	if _, err := s.WriteBatches(ctx, []vigil.Batch{{Readings: append(first, last...)}}); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	cols := []string{"id", "subject_id", "device_id", "code", "value", "unit", "t", "received", "key", "quality", "source", "performer"}
	copyRows := func(subj string, count, idBase int) {
		_, err := conn.CopyFrom(ctx, pgx.Identifier{"readings"}, cols, pgx.CopyFromFunc(func() func() ([]any, error) {
			i := 0
			return func() ([]any, error) {
				if i == count {
					return nil, nil
				}
				t := start.Add(time.Duration(i/len(fhirCodes)*fhirEvery) * time.Second)
				row := []any{int64(idBase + i), subj, "dev_big", fhirCodes[i%len(fhirCodes)], 60 + float64(i%40), "/min",
					t, t.Add(time.Second), fmt.Sprintf("%s/%d", subj, i), int32(0), "mqtt", ""}
				i++
				return row, nil
			}
		}()))
		if err != nil {
			b.Fatal(err)
		}
	}
	copyRows(subject, n, 1_000_000_000)
	for p := range 1000 {
		copyRows(fmt.Sprintf("pat_other_%04d", p), 100, 2_000_000_000+p*100)
	}
	// As autovacuum would: block ranges summarised, statistics gathered.
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE readings"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWriteBatchesSQLite is BenchmarkWriteBatches/5000 on the SQLite
// store, for comparison on the same machine at the same moment.
func BenchmarkWriteBatchesSQLite(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "vigil.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const size = 5000
	n := benchPatients * len(benchCodes)
	for i := 0; i < n; i += size {
		if _, err := s.WriteBatches(b.Context(), benchCall(i, size)); err != nil {
			b.Fatal(err)
		}
	}
	i, stored := n, 0
	for b.Loop() {
		b.StopTimer()
		bs := benchCall(i, size)
		i += size
		b.StartTimer()
		m, err := s.WriteBatches(b.Context(), bs)
		if err != nil {
			b.Fatal(err)
		}
		stored += m
	}
	b.ReportMetric(float64(stored)/b.Elapsed().Seconds(), "readings/s")
}
