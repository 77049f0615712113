package bus

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-health/vigil"
)

// TestLostDeliveryRedelivered: a delivery JetStream made to the durable
// consumer but that never reached Consume (here taken by another fetch, as
// one lost with a connection to a dying server is) is delivered again
// before anything after it is acknowledged — acknowledging a later one
// ("all" policy) would otherwise cover it unseen.
func TestLostDeliveryRedelivered(t *testing.T) {
	l := openLog(t, Options{})
	ctx := context.Background()
	mustAppend(t, l, vigil.Batch{Readings: readings("a", 1)})
	var seen []uint64
	c := startConsumer(t, l, "store", func(call int, ds []vigil.Delivery) error {
		if call == 1 {
			// Two more messages; the first of them is delivered to a
			// fetch that is not Consume's and never acknowledged.
			mustAppend(t, l, vigil.Batch{Readings: readings("b", 1)})
			mustAppend(t, l, vigil.Batch{Readings: readings("c", 1)})
			cons, err := l.js.Consumer(ctx, l.opts.Stream, "store")
			if err != nil {
				t.Error(err)
				return nil
			}
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				t.Error(err)
				return nil
			}
			for m := range batch.Messages() {
				if md, _ := m.Metadata(); md.Sequence.Stream != 2 {
					t.Errorf("took delivery %d, want 2", md.Sequence.Stream)
				}
			}
		}
		return nil
	})
	for len(seen) < 3 {
		for _, d := range c.next(t) {
			seen = append(seen, d.Seq)
		}
	}
	if want := []uint64{1, 2, 3}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("Consume delivered %v, want %v", seen, want)
	}
	waitLag(t, l, "store", 0)
}
