package storetest

import (
	"maps"
	"testing"

	"github.com/vigil-health/vigil"
)

// testDeviceStatuses: saved statuses come back by device id; a later save
// replaces a device's status and leaves the others alone.
func testDeviceStatuses(t *testing.T, open func(t *testing.T) vigil.Store) {
	s := open(t)
	ctx := t.Context()
	if got, err := s.DeviceStatuses(ctx); err != nil || len(got) != 0 {
		t.Fatalf("DeviceStatuses of an empty store = %q, %v", got, err)
	}
	if err := s.SaveDeviceStatuses(ctx, nil); err != nil {
		t.Fatalf("SaveDeviceStatuses(nil): %v", err)
	}
	if err := s.SaveDeviceStatuses(ctx, map[string][]byte{"dev_1": []byte(`{"battery":80}`), "dev_2": []byte(`{"sensor":"ok"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDeviceStatuses(ctx, map[string][]byte{"dev_1": []byte(`{"battery":20}`)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.DeviceStatuses(ctx)
	want := map[string][]byte{"dev_1": []byte(`{"battery":20}`), "dev_2": []byte(`{"sensor":"ok"}`)}
	if err != nil || !maps.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Errorf("DeviceStatuses = %q, %v; want %q", got, err, want)
	}
}
