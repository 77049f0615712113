package gatt_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gatt"
)

var seeds = []struct {
	uuid uint16
	hex  string
}{
	{gatt.UUIDBloodPressure, "1e 7800 5000 5d00 ea070c07091e00 4800 01 0100"},
	{gatt.UUIDBloodPressure, "15 a0f0 6bf0 ff07 4800 0a00"},
	{gatt.UUIDHeartRate, "16 48 0004 0002"},
	{gatt.UUIDHeartRate, "19 0100 0001 0004"},
	{gatt.UUIDTemperature, "07 da0300ff ea070c07091e00 06"},
	{gatt.UUIDGlucose, "1b 0100 ea070c07070000 0500 5fb0 11 2000"},
	{gatt.UUIDGlucoseContext, "ff 0600 00 01 05e0 03 51 0807 32 01 04a0 3bf0"},
	{gatt.UUIDWeight, "0f d836 ea070c07091e00 01 e500 d806"},
	{gatt.UUIDPLXSpotCheck, "1f 6100 4000 ea070c07091e00 8000 000800 19f0"},
	{gatt.UUIDPLXContinuous, "1f 6000 5000 5f00 5100 6000 4f00 0040 100000 19f0"},
	{gatt.UUIDBodyComposition, "fe0f e100 ea070c07091e00 01 0100 0200 0300 0400 0500 0600 0700 0800 0900"},
}

// FuzzItems: no payload makes a decoder read past its end or panic; a
// payload is decoded or refused with EINVALID; and no reading it makes
// carries a value that is not a finite number.
func FuzzItems(f *testing.F) {
	for _, s := range seeds {
		f.Add(s.uuid, unhex(f, s.hex))
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, uuid uint16, b []byte) {
		b = b[:len(b):len(b)] // a read past the end panics
		var ctx *gatt.GlucoseContext
		if c, err := gatt.DecodeGlucoseContext(b); err == nil {
			ctx = &c
		} else if vigil.ErrorCode(err) != vigil.EINVALID {
			t.Fatalf("context: error %v", err)
		}
		items, err := gatt.Items(gatt.Value{UUID: uuid, Bytes: b, Time: at}, ctx)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID || items != nil {
				t.Fatalf("Items: %v, %v", items, err)
			}
			return
		}
		if len(items) == 0 {
			t.Fatal("no items and no error")
		}
		for _, it := range items {
			vals := []*float64{it.Value}
			for _, c := range it.Components {
				vals = append(vals, c.Value)
			}
			for _, v := range vals {
				if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
					t.Fatalf("item %+v holds %v", it, *v)
				}
			}
			if _, err := time.Parse(time.RFC3339Nano, it.Time); err != nil {
				t.Fatalf("item time %q: %v", it.Time, err)
			}
		}
	})
}

// FuzzDecodeRequest: no request body panics the request decoder, and what
// it accepts is within its bounds.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"items":[{"characteristic":"2A35","value":"1e780050005d00ea070c07091e004800010100","time":"2026-12-07T10:00:00Z","seq":1,"peripheral":"A4:C1:38:00:00:01"}]}`))
	f.Add([]byte(`{"items":[{"characteristic":"2a37","value":"FkgABAAC","encoding":"base64","time":"2026-12-07T10:00:00+01:00"}]}`))
	f.Add([]byte(`{"items":[]}`))
	f.Add([]byte(`{"items":[1,"x",null,{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		raws, err := gatt.DecodeRequest(body, 10)
		if err != nil {
			if c := vigil.ErrorCode(err); c != vigil.EINVALID && c != vigil.ETOOLARGE {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(raws) == 0 || len(raws) > 10 {
			t.Fatalf("%d items", len(raws))
		}
		for _, raw := range raws {
			var it gatt.Item
			if json.Unmarshal(raw, &it) == nil {
				if _, err := gatt.ParseUUID(it.Characteristic); err != nil && vigil.ErrorCode(err) != vigil.EINVALID {
					t.Fatalf("ParseUUID: %v", err)
				}
			}
		}
	})
}
