package gatt_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gatt"
)

// recv is when the gateway received the values: 10:00 at UTC+01:00, the
// zone device time stamps are read in.
var recv = time.Date(2026, 12, 7, 10, 0, 0, 0, time.FixedZone("", 3600))

// TestItems: each characteristic becomes the readings it carries, coded
// from the catalogue, in the units its flags say, at the device's time
// when it sent one, with its status bits as quality flags; special values
// become no reading.
func TestItems(t *testing.T) {
	seq := uint64(9)
	for _, c := range []struct {
		name string
		uuid uint16
		hex  string
		ctx  string // a glucose context, joined
		want string // the items as JSON
		err  string // or the error code
	}{
		{"blood pressure", gatt.UUIDBloodPressure, "1e 7800 5000 5d00 ea070c07091e00 4800 01 0100", "",
			`[{"code":"85354-9","time":"2026-12-07T09:30:00+01:00","seq":9,"flags":["artifact"],"components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"},{"code":"8478-0","value":93,"unit":"mm[Hg]"}]},` +
				`{"code":"8867-4","value":72,"unit":"/min","time":"2026-12-07T09:30:00+01:00","seq":9,"flags":["artifact"]}]`, ""},
		{"blood pressure in kPa, mean NaN, cuff loose, pulse above range", gatt.UUIDBloodPressure, "15 a0f0 6bf0 ff07 4800 0a00", "",
			`[{"code":"85354-9","time":"2026-12-07T10:00:00+01:00","seq":9,"flags":["questionable"],"components":[{"code":"8480-6","value":16,"unit":"kPa"},{"code":"8462-4","value":10.7,"unit":"kPa"}]},` +
				`{"code":"8867-4","value":72,"unit":"/min","time":"2026-12-07T10:00:00+01:00","seq":9,"flags":["questionable"]}]`, ""},
		{"blood pressure pulse only", gatt.UUIDBloodPressure, "04 ff07 5000 5d00 4800", "",
			`[{"code":"8867-4","value":72,"unit":"/min","time":"2026-12-07T10:00:00+01:00","seq":9}]`, ""},
		{"blood pressure all absent", gatt.UUIDBloodPressure, "00 ff07 0008 fe07", "", "", vigil.EINVALID},
		{"heart rate with RR", gatt.UUIDHeartRate, "16 48 0004 0002", "",
			`[{"code":"8867-4","value":72,"unit":"/min","time":"2026-12-07T10:00:00+01:00","seq":9},` +
				`{"code":"147072","value":1000,"unit":"ms","time":"2026-12-07T09:59:59.5+01:00","seq":9},` +
				`{"code":"147072","value":500,"unit":"ms","time":"2026-12-07T10:00:00+01:00","seq":9}]`, ""},
		{"heart rate, no contact", gatt.UUIDHeartRate, "04 4b", "",
			`[{"code":"8867-4","value":75,"unit":"/min","time":"2026-12-07T10:00:00+01:00","seq":9,"flags":["sensor-off"]}]`, ""},
		{"heart rate 0", gatt.UUIDHeartRate, "04 00", "", "", vigil.EINVALID},
		{"temperature", gatt.UUIDTemperature, "00 6f0100ff", "",
			`[{"code":"8310-5","value":36.7,"unit":"Cel","time":"2026-12-07T10:00:00+01:00","seq":9}]`, ""},
		{"temperature °F with time", gatt.UUIDTemperature, "07 da0300ff ea070c07091e00 06", "",
			`[{"code":"8310-5","value":98.6,"unit":"[degF]","time":"2026-12-07T09:30:00+01:00","seq":9}]`, ""},
		{"temperature +INFINITY", gatt.UUIDTemperature, "00 feff7f00", "", "", vigil.EINVALID},
		{"glucose mg/dL", gatt.UUIDGlucose, "03 0100 ea070c07070000 0500 5fb0 11", "",
			`[{"code":"41653-7","value":95,"unit":"mg/dL","time":"2026-12-07T07:05:00+01:00","seq":9}]`, ""},
		{"glucose mmol/L, interstitial", gatt.UUIDGlucose, "06 0200 ea070c07070000 35c0 f9", "",
			`[{"code":"99504-3","value":5.3,"unit":"mmol/L","time":"2026-12-07T07:00:00+01:00","seq":9}]`, ""},
		{"glucose venous, result too high", gatt.UUIDGlucose, "0a 0400 ea070c07070000 5fb0 13 2000", "",
			`[{"code":"2339-0","value":95,"unit":"mg/dL","time":"2026-12-07T07:00:00+01:00","seq":9,"flags":["questionable"]}]`, ""},
		{"glucose, battery low only", gatt.UUIDGlucose, "0a 0400 ea070c07070000 5fb0 11 0100", "",
			`[{"code":"41653-7","value":95,"unit":"mg/dL","time":"2026-12-07T07:00:00+01:00","seq":9}]`, ""},
		{"glucose with context", gatt.UUIDGlucose, "12 0500 ea070c07070000 5fb0 11", "42 0500 01 41f0",
			`[{"code":"41653-7","value":95,"unit":"mg/dL","time":"2026-12-07T07:00:00+01:00","seq":9},` +
				`{"code":"4548-4","value":6.5,"unit":"%","time":"2026-12-07T07:00:00+01:00","seq":9}]`, ""},
		{"glucose control solution", gatt.UUIDGlucose, "02 0300 ea070c07070000 5fb0 4a", "", "", vigil.EINVALID},
		{"glucose NRes", gatt.UUIDGlucose, "02 0300 ea070c07070000 0008 11", "", "", vigil.EINVALID},
		{"glucose without concentration", gatt.UUIDGlucose, "00 0300 ea070c07070000", "", "", vigil.EINVALID},
		{"glucose context alone", gatt.UUIDGlucoseContext, "42 0500 01 41f0", "", "", vigil.EINVALID},
		{"weight SI with BMI and height", gatt.UUIDWeight, "0e d836 ea070c07091e00 01 e500 d806", "",
			`[{"code":"29463-7","value":70.2,"unit":"kg","time":"2026-12-07T09:30:00+01:00","seq":9},` +
				`{"code":"39156-5","value":22.9,"unit":"kg/m2","time":"2026-12-07T09:30:00+01:00","seq":9},` +
				`{"code":"8302-2","value":175.2,"unit":"cm","time":"2026-12-07T09:30:00+01:00","seq":9}]`, ""},
		{"weight imperial", gatt.UUIDWeight, "01 783c", "",
			`[{"code":"29463-7","value":154.8,"unit":"[lb_av]","time":"2026-12-07T10:00:00+01:00","seq":9}]`, ""},
		{"weight unsuccessful", gatt.UUIDWeight, "00 ffff", "", "", vigil.EINVALID},
		{"pulse oximeter spot-check", gatt.UUIDPLXSpotCheck, "0f 6100 4000 ea070c07091e00 8000 000800 19f0", "",
			`[{"code":"2708-6","value":97,"unit":"%","time":"2026-12-07T09:30:00+01:00","seq":9,"flags":["sensor-off"]},` +
				`{"code":"8889-8","value":64,"unit":"/min","time":"2026-12-07T09:30:00+01:00","seq":9,"flags":["sensor-off"]}]`, ""},
		{"spot-check, clock not set", gatt.UUIDPLXSpotCheck, "11 6100 4000 ea070c07091e00", "",
			`[{"code":"2708-6","value":97,"unit":"%","time":"2026-12-07T10:00:00+01:00","seq":9},` +
				`{"code":"8889-8","value":64,"unit":"/min","time":"2026-12-07T10:00:00+01:00","seq":9}]`, ""},
		{"spot-check, demonstration", gatt.UUIDPLXSpotCheck, "02 6100 4000 0004", "", "", vigil.EINVALID},
		{"continuous, poor signal, questionable, calibrating", gatt.UUIDPLXContinuous, "0c 6000 5000 0050 100000", "",
			`[{"code":"2708-6","value":96,"unit":"%","time":"2026-12-07T10:00:00+01:00","seq":9,"flags":["questionable","artifact","calibrating"]},` +
				`{"code":"8889-8","value":80,"unit":"/min","time":"2026-12-07T10:00:00+01:00","seq":9,"flags":["questionable","artifact","calibrating"]}]`, ""},
		{"body composition", gatt.UUIDBodyComposition, "0604 e100 ea070c07091e00 01 d836", "",
			`[{"code":"41982-0","value":22.5,"unit":"%","time":"2026-12-07T09:30:00+01:00","seq":9},` +
				`{"code":"29463-7","value":70.2,"unit":"kg","time":"2026-12-07T09:30:00+01:00","seq":9}]`, ""},
		{"body composition imperial height", gatt.UUIDBodyComposition, "0108 2c01 b202", "",
			`[{"code":"41982-0","value":30,"unit":"%","time":"2026-12-07T10:00:00+01:00","seq":9},` +
				`{"code":"8302-2","value":69,"unit":"[in_i]","time":"2026-12-07T10:00:00+01:00","seq":9}]`, ""},
		{"body composition unsuccessful", gatt.UUIDBodyComposition, "0000 ffff", "", "", vigil.EINVALID},
		{"body composition in several values", gatt.UUIDBodyComposition, "0010 e100", "", "", vigil.EINVALID},
		{"unknown characteristic", 0x2A99, "00", "", "", vigil.EINVALID},
		{"short", gatt.UUIDBloodPressure, "00 7800", "", "", vigil.EINVALID},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ctx *gatt.GlucoseContext
			if c.ctx != "" {
				m, err := gatt.DecodeGlucoseContext(unhex(t, c.ctx))
				if err != nil {
					t.Fatal(err)
				}
				ctx = &m
			}
			items, err := gatt.Items(gatt.Value{UUID: c.uuid, Bytes: unhex(t, c.hex), Time: recv, Seq: &seq}, ctx)
			if c.err != "" {
				if vigil.ErrorCode(err) != c.err || items != nil {
					t.Fatalf("got %v, %v; want error %s", items, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(items)
			if string(got) != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

// TestItemsNeverSpecial: whatever special value a field holds, no reading
// carries it as a number (the values of every SFLOAT field are swept).
func TestItemsNeverSpecial(t *testing.T) {
	specials := []string{"ff07", "0008", "fe07", "0208", "0108"}
	for _, s := range specials {
		for _, h := range []string{
			"00 " + s + " 5000 5d00", "00 7800 " + s + " 5d00", "04 7800 5000 " + s + " " + s,
		} {
			items, _ := gatt.Items(gatt.Value{UUID: gatt.UUIDBloodPressure, Bytes: unhex(t, h), Time: recv}, nil)
			for _, it := range items {
				if it.Code == gatt.CodeBloodPressure && len(it.Components) < 2 {
					t.Errorf("%s: a panel without systolic and diastolic: %+v", h, it)
				}
				for _, c := range it.Components {
					if *c.Value > 2045 || *c.Value < -2045 {
						t.Errorf("%s: special value stored as %v", h, *c.Value)
					}
				}
				if it.Value != nil && (*it.Value > 2045 || *it.Value < -2045) {
					t.Errorf("%s: special value stored as %v", h, *it.Value)
				}
			}
		}
		for _, h := range []string{"00 " + s + " 4000", "00 6100 " + s} {
			items, _ := gatt.Items(gatt.Value{UUID: gatt.UUIDPLXSpotCheck, Bytes: unhex(t, h), Time: recv}, nil)
			if len(items) != 1 {
				t.Errorf("%s: %d readings, want only the one that is a number", h, len(items))
			}
		}
	}
}
