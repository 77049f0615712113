package gatt_test

import (
	"testing"

	"github.com/vigil-health/vigil/gatt"
)

// BenchmarkDecode decodes a mix of the characteristics' payloads, one per
// iteration (docs/performance.md).
func BenchmarkDecode(b *testing.B) {
	type payload struct {
		uuid uint16
		b    []byte
	}
	var ps []payload
	for _, s := range seeds {
		ps = append(ps, payload{s.uuid, unhex(b, s.hex)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := ps[i%len(ps)]
		i++
		var err error
		switch p.uuid {
		case gatt.UUIDBloodPressure:
			_, err = gatt.DecodeBloodPressure(p.b)
		case gatt.UUIDHeartRate:
			_, err = gatt.DecodeHeartRate(p.b)
		case gatt.UUIDTemperature:
			_, err = gatt.DecodeTemperature(p.b)
		case gatt.UUIDGlucose:
			_, err = gatt.DecodeGlucose(p.b)
		case gatt.UUIDGlucoseContext:
			_, err = gatt.DecodeGlucoseContext(p.b)
		case gatt.UUIDWeight:
			_, err = gatt.DecodeWeight(p.b)
		case gatt.UUIDPLXSpotCheck:
			_, err = gatt.DecodePLXSpotCheck(p.b)
		case gatt.UUIDPLXContinuous:
			_, err = gatt.DecodePLXContinuous(p.b)
		case gatt.UUIDBodyComposition:
			_, err = gatt.DecodeBodyComposition(p.b)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payloads/s")
}

// BenchmarkItems decodes the same mix into ingest items (codes, units,
// times, flags): what the gateway does per value before ingest.
func BenchmarkItems(b *testing.B) {
	var vs []gatt.Value
	for _, s := range seeds {
		if s.uuid != gatt.UUIDGlucoseContext {
			vs = append(vs, gatt.Value{UUID: s.uuid, Bytes: unhex(b, s.hex), Time: recv})
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := gatt.Items(vs[i%len(vs)], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payloads/s")
}
