package hl7

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMLLP sends ORU^R01 messages of 10 numeric OBX each (SpO2,
// pulse rate, ECG heart rate, respiration, thoracic respiration,
// temperature, non-invasive pulse, and a blood pressure's systolic,
// diastolic and mean: 8 readings) over 32 plain MLLP connections, one
// patient each, each message answered AA only once its readings are
// durable in the log (embedded JetStream, fsync on every write). It
// reports messages and readings per second. docs/performance.md records
// its figure.
func BenchmarkMLLP(b *testing.B) {
	const conns = 32
	e := newEnv(b, func(o *Options) { o.CacheTTL = 0 })
	e.sender("MONITOR", "WARD7", "")
	mrns := make([]string, conns)
	for i := range conns {
		mrns[i] = fmt.Sprint("B", i)
		e.patient(mrns[i])
	}
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = e.dial()
	}
	base := testNow.Add(-2 * time.Hour)
	var seq atomic.Int64
	message := func(c int) string {
		n := seq.Add(1)
		ts := base.Add(time.Duration(n)*time.Millisecond).Format("20060102150405.0000") + "+0000"
		v := n % 7
		obx := func(i int, code, sub string, val int64, unit string) string {
			return fmt.Sprintf("OBX|%d|NM|%s|%s|%d|%s|||||R|||%s||||0012345678ABCDEF^^0012345678ABCDEF^EUI-64", i, code, sub, val, unit, ts)
		}
		return oru(fmt.Sprint("BENCH", n), mrns[c],
			obx(1, "150456^MDC_PULS_OXIM_SAT_O2^MDC", "1.1.1.1", 90+v, "262688^MDC_DIM_PERCENT^MDC"),
			obx(2, "149530^MDC_PULS_OXIM_PULS_RATE^MDC", "1.1.1.2", 60+v, "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
			obx(3, "147842^MDC_ECG_HEART_RATE^MDC", "1.2.1.1", 61+v, "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
			obx(4, "151562^MDC_RESP_RATE^MDC", "1.3.1.1", 12+v, "264928^MDC_DIM_RESP_PER_MIN^MDC"),
			obx(5, "151578^MDC_TTHOR_RESP_RATE^MDC", "1.3.1.2", 13+v, "264928^MDC_DIM_RESP_PER_MIN^MDC"),
			obx(6, "150364^MDC_TEMP_BODY^MDC", "1.4.1.1", 37, "268192^MDC_DIM_DEGC^MDC"),
			obx(7, "149546^MDC_PULS_RATE_NON_INV^MDC", "1.5.1.4", 62+v, "264864^MDC_DIM_BEAT_PER_MIN^MDC"),
			obx(8, "150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "1.5.1.1", 120+v, "266016^MDC_DIM_MMHG^MDC"),
			obx(9, "150022^MDC_PRESS_BLD_NONINV_DIA^MDC", "1.5.1.2", 80+v, "266016^MDC_DIM_MMHG^MDC"),
			obx(10, "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC", "1.5.1.3", 93+v, "266016^MDC_DIM_MMHG^MDC"),
		)
	}
	// One message first: it must store 8 readings.
	if a := e.mustSend(clients[0], message(0)); a.code != AckAccept || !strings.Contains(a.text, "8 readings stored") {
		b.Fatalf("ACK = %q", a.raw)
	}
	var next atomic.Int64
	var failed atomic.Value
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range conns {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				ack, err := clients[c].send(message(c))
				if err != nil || !strings.Contains(ack, "\rMSA|AA|") {
					failed.Store(fmt.Sprintf("%v %q", err, ack))
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(8*float64(b.N)/elapsed.Seconds(), "readings/s")
	// The process's CPU time per message (the whole node: MLLP, parsing,
	// ingest, the log and the store writer storing them meanwhile):
	// on a shared machine a steadier measure than the rate.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/msg")
}
