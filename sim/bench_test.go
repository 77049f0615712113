package sim

import (
	"testing"
	"time"
)

// BenchmarkPatientDay generates one virtual day of one patient's readings
// (about 5,000) per iteration.
func BenchmarkPatientDay(b *testing.B) {
	var n int
	for i := 0; b.Loop(); i++ {
		p := NewPatient(uint64(i), Sepsis, t0)
		n += len(p.Step(t0.Add(24 * time.Hour)))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
}
