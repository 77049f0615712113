package bus

import (
	"context"
	"slices"
	"testing"

	"github.com/vigil-health/vigil"
)

// TestRead: a range read returns exactly the positions asked for, in
// order, whatever the fetch size, and stops at the end of the stream.
func TestRead(t *testing.T) {
	l := openLog(t, Options{FetchSize: 3})
	for i := range 10 {
		mustAppend(t, l, vigil.Batch{Readings: readings(string(rune('a'+i)), 1)})
	}
	for _, tc := range []struct {
		from, to uint64
		want     []uint64
	}{
		{1, 10, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{0, 2, []uint64{1, 2}},
		{4, 4, []uint64{4}},
		{8, 50, []uint64{8, 9, 10}},
		{5, 4, nil},
		{11, 20, nil},
	} {
		var got []uint64
		calls := 0
		err := l.Read(context.Background(), tc.from, tc.to, func(ctx context.Context, ds []vigil.Delivery) error {
			calls++
			if len(ds) > 3 {
				t.Errorf("Read(%d, %d): a batch of %d, more than FetchSize", tc.from, tc.to, len(ds))
			}
			for _, d := range ds {
				got = append(got, d.Seq)
				if len(d.Batch.Readings) != 1 {
					t.Errorf("Read(%d, %d): delivery %d has %d readings, want 1", tc.from, tc.to, d.Seq, len(d.Batch.Readings))
				}
			}
			return nil
		})
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Read(%d, %d) = %v, %v; want %v", tc.from, tc.to, got, err, tc.want)
		}
	}
	// fn's error stops the read and is returned.
	stop := vigil.Errorf(vigil.EINVALID, "stop")
	if err := l.Read(context.Background(), 1, 10, func(context.Context, []vigil.Delivery) error { return stop }); err != stop {
		t.Errorf("Read with failing fn = %v, want %v", err, stop)
	}
}
