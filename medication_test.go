package vigil

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// TestDeviceDoseID: a device dose's id names its reading and its order and
// parses back; anything else is not one.
func TestDeviceDoseID(t *testing.T) {
	for _, c := range []struct {
		reading int64
		order   string
	}{{1, "mor_1"}, {7, "mor_0123456789abcdefghjkmnpqrs"}, {math.MaxInt64, "x"}} {
		id := DeviceDoseID(c.reading, c.order)
		if r, o, ok := ParseDeviceDoseID(id); !ok || r != c.reading || o != c.order {
			t.Errorf("ParseDeviceDoseID(%q) = %d, %q, %v; want %d, %q", id, r, o, ok, c.reading, c.order)
		}
	}
	for _, bad := range []string{
		"", "rdg-", "rdg-7", "rdg-7.", "rdg-.mor_1", "rdg-0.mor_1", "rdg-07.mor_1", "rdg--7.mor_1", "rdg-+7.mor_1",
		"rdg-7x.mor_1", "RDG-7.mor_1", "dos_1", "mor_1", "7.mor_1",
		"rdg-" + strconv.FormatUint(math.MaxInt64+1, 10) + ".mor_1", "rdg-" + strings.Repeat("9", 19) + ".mor_1",
		"rdg-" + strings.Repeat("1", 20) + ".mor_1",
	} {
		if r, o, ok := ParseDeviceDoseID(bad); ok {
			t.Errorf("ParseDeviceDoseID(%q) = %d, %q, true; want not a device dose id", bad, r, o)
		}
	}
}

// TestDoseFromReadingID: the dose a reading reports has an id of its own
// for each order naming the device.
func TestDoseFromReadingID(t *testing.T) {
	r := Reading{ID: 42, SubjectID: "pat_1", DeviceID: "dev_pen", Code: CodeInsulinBolus, Value: 4, Unit: "[iU]"}
	a, okA := DoseFromReading(&MedicationOrder{ID: "mor_a", SubjectID: "pat_1", DeviceID: "dev_pen"}, r)
	b, okB := DoseFromReading(&MedicationOrder{ID: "mor_b", SubjectID: "pat_1", DeviceID: "dev_pen"}, r)
	if !okA || !okB || a.ID == b.ID || a.ID != DeviceDoseID(42, "mor_a") || a.Source != DoseDevice {
		t.Errorf("doses %+v (%v) and %+v (%v): want two device doses with distinct ids", a, okA, b, okB)
	}
	if _, ok := DoseFromReading(&MedicationOrder{ID: "mor_c", SubjectID: "pat_2", DeviceID: "dev_pen"}, r); ok {
		t.Error("a reading of another patient is a dose of their order")
	}
}

// FuzzParseDeviceDoseID: never panics; what it accepts is a positive
// reading id and an order id that DeviceDoseID turns back into the input.
func FuzzParseDeviceDoseID(f *testing.F) {
	for _, s := range []string{"rdg-7.mor_1", "rdg-0.x", "rdg-9223372036854775807.m", "rdg-9223372036854775808.m", "dos_1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		r, o, ok := ParseDeviceDoseID(id)
		if !ok {
			return
		}
		if r <= 0 || o == "" || DeviceDoseID(r, o) != id {
			t.Fatalf("ParseDeviceDoseID(%q) = %d, %q", id, r, o)
		}
	})
}
