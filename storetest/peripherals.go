package storetest

import (
	"testing"

	"github.com/vigil-health/vigil"
)

// testPeripherals: a gateway relays for the devices registered to it under
// the address it names them by, and for no other.
func testPeripherals(t *testing.T, open func(t *testing.T) vigil.Store) {
	setup := func(t *testing.T) (s vigil.Store, gw, cuff, scale *vigil.Device) {
		t.Helper()
		s = open(t)
		gw = &vigil.Device{Kind: "gateway", TokenHash: hash("gateway-token")}
		cuff = &vigil.Device{Kind: "bp-cuff", Serial: "CUFF-1", SubjectID: subjectA} // no token: it never connects itself
		scale = &vigil.Device{Kind: "scale", SubjectID: subjectB}
		for _, d := range []*vigil.Device{gw, cuff, scale} {
			if err := s.CreateDevice(t.Context(), d); err != nil {
				t.Fatalf("CreateDevice: %v", err)
			}
		}
		return s, gw, cuff, scale
	}

	t.Run("AddAndLookUp", func(t *testing.T) {
		s, gw, cuff, scale := setup(t)
		ctx := t.Context()
		p := &vigil.Peripheral{GatewayID: gw.ID, Address: "A4:C1:38:00:00:01", DeviceID: cuff.ID}
		if err := s.AddPeripheral(ctx, p); err != nil {
			t.Fatalf("AddPeripheral: %v", err)
		}
		if p.Created.IsZero() {
			t.Error("AddPeripheral did not set Created")
		}
		q := &vigil.Peripheral{GatewayID: gw.ID, Address: "SCALE-77", DeviceID: scale.ID}
		if err := s.AddPeripheral(ctx, q); err != nil {
			t.Fatalf("AddPeripheral: %v", err)
		}
		got, err := s.Peripheral(ctx, gw.ID, "A4:C1:38:00:00:01")
		if err != nil {
			t.Fatalf("Peripheral: %v", err)
		}
		if *got != *p {
			t.Errorf("Peripheral = %+v, want %+v", got, p)
		}
		_, err = s.Peripheral(ctx, gw.ID, "A4:C1:38:00:00:02")
		wantCode(t, "Peripheral at an address not registered", err, vigil.ENOTFOUND)
		_, err = s.Peripheral(ctx, cuff.ID, "A4:C1:38:00:00:01")
		wantCode(t, "Peripheral of another gateway", err, vigil.ENOTFOUND)

		all, err := s.Peripherals(ctx, gw.ID)
		if err != nil {
			t.Fatalf("Peripherals: %v", err)
		}
		if len(all) != 2 || *all[0] != *p || *all[1] != *q {
			t.Errorf("Peripherals = %v, want the cuff then the scale (by address)", all)
		}
		if none, err := s.Peripherals(ctx, cuff.ID); err != nil || len(none) != 0 {
			t.Errorf("Peripherals of a device that relays for none = %v, %v", none, err)
		}

		for _, c := range []struct {
			gw, dev string
			want    bool
		}{{gw.ID, cuff.ID, true}, {gw.ID, scale.ID, true}, {gw.ID, gw.ID, false}, {cuff.ID, gw.ID, false}, {gw.ID, "dev_unknown", false}} {
			ok, err := s.Relays(ctx, c.gw, c.dev)
			if err != nil || ok != c.want {
				t.Errorf("Relays(%s, %s) = %v, %v; want %v", c.gw, c.dev, ok, err, c.want)
			}
		}
	})

	t.Run("Refused", func(t *testing.T) {
		s, gw, cuff, scale := setup(t)
		ctx := t.Context()
		if err := s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "CUFF-1", DeviceID: cuff.ID}); err != nil {
			t.Fatalf("AddPeripheral: %v", err)
		}
		err := s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "CUFF-1", DeviceID: scale.ID})
		wantCode(t, "AddPeripheral at a taken address", err, vigil.ECONFLICT)
		err = s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "OTHER", DeviceID: cuff.ID})
		wantCode(t, "AddPeripheral of a device relayed already", err, vigil.ECONFLICT)
		err = s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "SELF", DeviceID: gw.ID})
		wantCode(t, "AddPeripheral of the gateway itself", err, vigil.EINVALID)
		err = s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "X", DeviceID: "dev_unknown"})
		wantCode(t, "AddPeripheral of an unknown device", err, vigil.ENOTFOUND)
		err = s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: "dev_unknown", Address: "X", DeviceID: scale.ID})
		wantCode(t, "AddPeripheral to an unknown gateway", err, vigil.ENOTFOUND)
		// Another gateway may relay for the same device.
		other := &vigil.Device{Kind: "gateway"}
		if err := s.CreateDevice(ctx, other); err != nil {
			t.Fatal(err)
		}
		if err := s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: other.ID, Address: "CUFF-1", DeviceID: cuff.ID}); err != nil {
			t.Errorf("a second gateway relaying for the cuff: %v", err)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		s, gw, cuff, _ := setup(t)
		ctx := t.Context()
		if err := s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "CUFF-1", DeviceID: cuff.ID}); err != nil {
			t.Fatalf("AddPeripheral: %v", err)
		}
		if err := s.RemovePeripheral(ctx, gw.ID, "CUFF-1"); err != nil {
			t.Fatalf("RemovePeripheral: %v", err)
		}
		if ok, err := s.Relays(ctx, gw.ID, cuff.ID); err != nil || ok {
			t.Errorf("Relays after RemovePeripheral = %v, %v", ok, err)
		}
		wantCode(t, "RemovePeripheral again", s.RemovePeripheral(ctx, gw.ID, "CUFF-1"), vigil.ENOTFOUND)
		if _, err := s.Device(ctx, cuff.ID); err != nil {
			t.Errorf("the device is gone with its registration: %v", err)
		}
		// The address is free again.
		if err := s.AddPeripheral(ctx, &vigil.Peripheral{GatewayID: gw.ID, Address: "CUFF-1", DeviceID: cuff.ID}); err != nil {
			t.Errorf("AddPeripheral after RemovePeripheral: %v", err)
		}
	})
}
