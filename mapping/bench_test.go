package mapping

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkMap maps a day of CGM readings (288 Nightscout entries, one
// every 5 minutes) per operation; records/s is the rate that matters.
func BenchmarkMap(b *testing.B) {
	spec, _ := BuiltinSpec("nightscout-entries")
	tpl, err := Compile("nightscout", 1, spec, Limits{})
	if err != nil {
		b.Fatal(err)
	}
	var es []string
	for i := range 288 {
		es = append(es, fmt.Sprintf(`{"_id":"%024d","type":"sgv","sgv":%d,"date":%d,"direction":"Flat","noise":1,"device":"xDrip"}`, i, 80+i%100, 1796630400000-int64(i)*300000))
	}
	msg := []byte("[" + strings.Join(es, ",") + "]")
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		out, err := tpl.Map(b.Context(), msg, Limits{})
		if err != nil || len(out.Readings) != 288 {
			b.Fatal(out, err)
		}
	}
	b.ReportMetric(float64(b.N*288)/b.Elapsed().Seconds(), "records/s")
}
