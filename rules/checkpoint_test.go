package rules

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// TestStateInParts: a state saved as a head, a snapshot and the deltas
// since, at any point of a stream (late readings and values trimmed from
// the windows included), decodes to the state the live one is, byte for
// byte of its whole encoding; and after it, the two give the same
// conditions for the same readings.
func TestStateInParts(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NEWS2.Smoothing = Duration(3 * time.Minute)
	at := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	codes := []string{CodeHeartRate, CodeRespiration, CodeSpO2, CodeTemperature}
	reading := func(i int) vigil.Reading {
		ti := at.Add(time.Duration(i) * 20 * time.Second)
		if i%7 == 3 {
			ti = ti.Add(-5 * time.Minute) // late, inserted before newer values
		}
		code := codes[i%len(codes)]
		v := float64(60 + i%50)
		if code == CodeTemperature {
			v = 36 + float64(i%30)/10
		}
		return vigil.Reading{SubjectID: "pat_1", DeviceID: fmt.Sprintf("dev_%d", i%2), Code: code, Value: v,
			Unit: "/min", Time: ti, Key: fmt.Sprintf("d:dev_%d:%d", i%2, i)}
	}
	for _, every := range []struct {
		name           string
		delta, snapAt  int // a delta every delta readings; a snapshot at those multiples of snapAt
		readings, tail int
	}{
		{"snapshot only at first", 10, 1 << 30, 1500, 40},
		{"snapshot now and then", 7, 5, 1500, 40},
		{"every reading", 1, 50, 400, 20},
		{"no delta", 1 << 30, 1 << 30, 30, 10},
	} {
		t.Run(every.name, func(t *testing.T) {
			var live PatientState
			live.TrackSeries()
			var snap []byte
			var deltas [][]byte
			take := func(i int) {
				if i%every.delta != 0 {
					return
				}
				if snap == nil || (i/every.delta)%every.snapAt == 0 {
					b, err := live.SeriesSnapshot()
					if err != nil {
						t.Fatal(err)
					}
					snap, deltas = b, nil
					return
				}
				b, err := live.SeriesDelta()
				if err != nil {
					t.Fatal(err)
				}
				if b != nil {
					deltas = append(deltas, b)
				}
			}
			for i := range every.readings {
				live.Apply(cfg, reading(i))
				take(i)
			}
			// The values since the last part go into one more delta.
			if b, err := live.SeriesDelta(); err != nil {
				t.Fatal(err)
			} else if b != nil {
				deltas = append(deltas, b)
			}
			head, err := live.MarshalHead()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(head, []byte(`"series"`)) {
				t.Fatalf("head holds the series: %.200s", head)
			}
			var back PatientState
			if err := back.UnmarshalParts(head, snap, deltas); err != nil {
				t.Fatalf("UnmarshalParts: %v", err)
			}
			want, err := live.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := back.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("rebuilt state differs:\ngot  %.400s\nwant %.400s", got, want)
			}
			for i := every.readings; i < every.readings+every.tail; i++ {
				r := reading(i)
				if g, w := fmt.Sprint(back.Apply(cfg, r)), fmt.Sprint(live.Apply(cfg, r)); g != w {
					t.Fatalf("reading %d: rebuilt state gives %s, live %s", i, g, w)
				}
			}
		})
	}
}

// TestSeriesNotTrackedByDefault: a state that is never saved in parts
// records nothing for deltas.
func TestSeriesNotTrackedByDefault(t *testing.T) {
	var s PatientState
	s.Apply(DefaultConfig(), vigil.Reading{SubjectID: "p", DeviceID: "d", Code: CodeHeartRate, Value: 70, Unit: "/min",
		Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Key: "k"})
	if b, err := s.SeriesDelta(); b != nil || err != nil {
		t.Errorf("SeriesDelta = %s, %v; want nothing", b, err)
	}
}
