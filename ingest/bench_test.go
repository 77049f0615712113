package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkSubmit decodes, validates and logs (in memory) one request of
// 50 heart rates as `vigil bench` sends them.
func BenchmarkSubmit(b *testing.B) {
	s, log := newService(b)
	t0 := now.Add(-time.Minute)
	seq := 0
	body := func() []byte {
		var sb strings.Builder
		sb.WriteString(`{"readings":[`)
		for j := range 50 {
			if j > 0 {
				sb.WriteByte(',')
			}
			seq++
			fmt.Fprintf(&sb, `{"code":"8867-4","value":%d,"unit":"/min","time":%q,"seq":%d}`, 60+seq%40, t0.Add(time.Duration(j)*time.Millisecond).Format(time.RFC3339Nano), seq)
		}
		sb.WriteString(`]}`)
		return []byte(sb.String())
	}
	bodies := make([][]byte, 64)
	for i := range bodies {
		bodies[i] = body()
	}
	i := 0
	for b.Loop() {
		res, err := s.Submit(context.Background(), deviceA, "http", bodies[i%len(bodies)])
		if err != nil || res.Accepted != 50 {
			b.Fatalf("Submit = %+v, %v", res, err)
		}
		log.batches = log.batches[:0]
		i++
	}
	b.ReportMetric(float64(50*i)/b.Elapsed().Seconds(), "readings/s")
}
