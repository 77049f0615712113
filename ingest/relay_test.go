package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// relayTable is a registry of peripherals: gateway → devices it relays for.
type relayTable map[string][]string

func (r relayTable) Relays(ctx context.Context, gatewayID, deviceID string) (bool, error) {
	if gatewayID == "dev_broken" {
		return false, errors.New("registry down")
	}
	for _, d := range r[gatewayID] {
		if d == deviceID {
			return true, nil
		}
	}
	return false, nil
}

// TestRelayedReadings: a device may send a reading for another device only
// if it relays for it, and the reading is then the other device's, for its
// patient; the gateway need not be assigned to anyone.
func TestRelayedReadings(t *testing.T) {
	s, log := newService(t)
	s.Relays = relayTable{"dev_free": {"dev_a", "dev_revoked"}}
	gw := &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_free"} // unassigned
	at := now.Add(-time.Minute).Format(time.RFC3339)
	v := 72.0
	item := func(device, patient string) Item {
		return Item{Code: "8867-4", Value: &v, Unit: "/min", Time: at, DeviceID: device, PatientID: patient}
	}
	res, err := s.SubmitItems(t.Context(), gw, "gatt", []Item{
		item("dev_a", ""),       // relayed: pat_1's
		item("dev_b", ""),       // not relayed
		item("dev_revoked", ""), // relayed, but revoked
		item("dev_a", "pat_2"),  // relayed, for a patient not the device's
		item("", ""),            // the gateway's own: it is assigned to nobody
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 || len(res.Rejected) != 4 {
		t.Fatalf("result %+v", res)
	}
	for i, want := range map[int]string{1: "not a peripheral of this gateway", 2: "revoked", 3: "not assigned to patient pat_2", 4: "not assigned to a patient"} {
		r := res.Rejected[i-1]
		if r.Index != i || r.Code != vigil.EFORBIDDEN || !strings.Contains(r.Reason, want) {
			t.Errorf("rejection %+v, want item %d forbidden: %q", r, i, want)
		}
	}
	got := log.batches[0].Readings[0]
	if got.DeviceID != "dev_a" || got.SubjectID != "pat_1" || !strings.HasPrefix(got.Key, "h:") {
		t.Errorf("relayed reading %+v, want dev_a's for pat_1", got)
	}

	// Without a registry no device relays; a registry that fails fails the
	// submission (nothing acknowledged).
	s.Relays = nil
	if res, err := s.SubmitItems(t.Context(), gw, "gatt", []Item{item("dev_a", "")}); vigil.ErrorCode(err) != vigil.EFORBIDDEN {
		t.Errorf("no registry: %+v, %v", res, err)
	}
	s.Relays = relayTable{}
	broken := &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_broken"}
	if res, err := s.SubmitItems(t.Context(), broken, "gatt", []Item{item("dev_a", "")}); res != nil || err == nil {
		t.Errorf("registry down: %+v, %v", res, err)
	}
}

// TestOrigin: an item an adapter decoded carries its origin, which the
// quarantine keeps in place of the item's JSON, at the origin's position;
// an origin the adapter refused refuses the item unvalidated.
func TestOrigin(t *testing.T) {
	s, log := newService(t)
	dev := &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_a", SubjectID: "pat_1"}
	at := now.Add(-time.Minute).Format(time.RFC3339)
	v, bad := 72.0, 900.0
	raw := []byte(`{"characteristic":"2A37","value":"00ff"}`)
	res, err := s.SubmitItems(t.Context(), dev, "gatt", []Item{
		{Code: "8867-4", Value: &v, Unit: "/min", Time: at, Origin: &Origin{Index: 0, Payload: []byte("first")}},
		{Code: "8867-4", Value: &bad, Unit: "/min", Time: at, Origin: &Origin{Index: 3, Payload: raw}},
		{Origin: &Origin{Index: 4, Payload: []byte("undecodable"), Err: vigil.Errorf(vigil.EINVALID, "not hex")}},
	})
	if err != nil || res.Accepted != 1 || len(res.Rejected) != 2 || res.Rejected[1].Reason != "not hex" {
		t.Fatalf("%+v, %v", res, err)
	}
	q := log.batches[0].Quarantine
	if len(q) != 2 || string(q[0].Payload) != string(raw) || q[0].Index != 3 || string(q[1].Payload) != "undecodable" || q[1].Index != 4 {
		t.Errorf("quarantine %+v", q)
	}
}
