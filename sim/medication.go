package sim

import (
	"math/rand/v2"
	"time"

	"github.com/vigil-health/vigil"
)

// PillBottleKind is the device kind of a smart pill bottle.
const PillBottleKind DeviceKind = "pill-bottle"

// PillBottle is a smart pill bottle of a patient on a daily schedule: when
// the patient takes a dose it reports one reading vigil.CodeMedicationDose
// of 1 {dose}, at the scheduled time jittered by a normal deviation of 10
// minutes (at most 30), except the doses Miss says the patient misses. It
// is deterministic in its seed.
type PillBottle struct {
	Times    []string       // local clock times "HH:MM"
	Location *time.Location // the patient's time zone
	Start    time.Time
	Seed     uint64
	// Miss reports whether the patient misses the dose due at due; nil:
	// none is missed.
	Miss func(due time.Time) bool

	last time.Time // the newest time Step covered
	seq  uint64
}

// Due returns the scheduled times of b in (from, to], oldest first.
func (b *PillBottle) Due(from, to time.Time) []time.Time {
	var out []time.Time
	f := from.In(b.Location)
	for day := time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, b.Location); !day.After(to); day = day.AddDate(0, 0, 1) {
		for _, c := range b.Times {
			m, err := vigil.ParseClock(c)
			if err != nil {
				continue
			}
			t := time.Date(day.Year(), day.Month(), day.Day(), m/60, m%60, 0, 0, b.Location)
			if t.After(from) && !t.After(to) && !t.Before(b.Start) {
				out = append(out, t)
			}
		}
	}
	return out
}

// Step returns the doses taken since the previous call (on the first, since
// Start) up to now, oldest first. A dose belongs to its scheduled time: it
// is reported once the scheduled time is past, at its jittered time, never
// later than now.
func (b *PillBottle) Step(now time.Time) []Reading {
	from := b.last
	if from.IsZero() {
		from = b.Start.Add(-time.Nanosecond)
	}
	if !now.After(from) {
		return nil
	}
	b.last = now
	var out []Reading
	for _, due := range b.Due(from, now) {
		if b.Miss != nil && b.Miss(due) {
			continue
		}
		r := rand.New(rand.NewPCG(b.Seed, uint64(due.Unix())))
		at := due.Add(time.Duration(clamp(r.NormFloat64(), -3, 3) * float64(10*time.Minute))).Truncate(time.Second)
		if at.After(now) {
			at = now
		}
		b.seq++
		out = append(out, Reading{Device: PillBottleKind, Seq: b.seq, Code: vigil.CodeMedicationDose, Value: 1, Unit: "{dose}", Time: at.UTC()})
	}
	return out
}
