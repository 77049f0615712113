package gatt

import (
	"encoding/json"
	"testing"

	"github.com/vigil-health/vigil"
)

// FuzzParseItem: no request item panics the item parser; what it accepts
// has a known characteristic form, a value within MaxValueBytes and a time.
func FuzzParseItem(f *testing.F) {
	f.Add([]byte(`{"characteristic":"2A35","value":"1e780050005d00ea070c07091e004800010100","time":"2026-12-07T10:00:00Z","seq":1,"peripheral":"A4:C1:38:00:00:01"}`))
	f.Add([]byte(`{"characteristic":"00002a37-0000-1000-8000-00805f9b34fb","value":"FkgABAAC","encoding":"base64","time":"2026-12-07T10:00:00+01:00"}`))
	f.Add([]byte(`{"characteristic":"0x2A1C","value":"006f0100ff","time":"2026-12-07T10:00:00.5-05:00"}`))
	f.Add([]byte(`{"characteristic":"2A35","value":"zz","time":"now"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var it Item
		var v Value
		err := parseItem(json.RawMessage(raw), &it, &v)
		if err != nil {
			if c := vigil.ErrorCode(err); c != vigil.EINVALID && c != vigil.ETOOLARGE {
				t.Fatalf("error %v", err)
			}
			return
		}
		if len(v.Bytes) > MaxValueBytes || v.Time.IsZero() {
			t.Fatalf("accepted %+v", v)
		}
		if _, err := ParseUUID(it.Characteristic); err != nil {
			t.Fatalf("accepted characteristic %q: %v", it.Characteristic, err)
		}
	})
}

func TestParseUUID(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"2A35", 0x2A35, true}, {"2a35", 0x2A35, true}, {"0x2A35", 0x2A35, true},
		{"00002a35-0000-1000-8000-00805f9b34fb", 0x2A35, true}, {"00002A37-0000-1000-8000-00805F9B34FB", 0x2A37, true},
		{"2A3", 0, false}, {"2A355", 0, false}, {"", 0, false}, {"+2A3", 0, false}, {"12342a35-0000-1000-8000-00805f9b34fb", 0, false},
	} {
		got, err := ParseUUID(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseUUID(%q) = %#x, %v", c.in, got, err)
		}
	}
}
