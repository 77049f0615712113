package vigil

import (
	"context"
	"strings"
	"time"
)

// Peripheral is a device that reaches Vigil through a gateway: a Bluetooth
// blood pressure cuff, glucose meter or scale whose measurements a phone or
// hub relays. It is a registered Device of its own (kind, model, assigned
// patient, revocation), usually without a token, and the gateway names it
// by Address. A reading a gateway relays for a peripheral belongs to the
// peripheral's patient, not the gateway's.
type Peripheral struct {
	GatewayID string    `json:"gateway_id"` // the relaying device
	Address   string    `json:"address"`    // as the gateway names it; see PeripheralAddress
	DeviceID  string    `json:"device_id"`  // the registered device it is
	Created   time.Time `json:"created"`
}

// MaxPeripheralAddress is the longest peripheral address, in bytes.
const MaxPeripheralAddress = 64

// PeripheralAddress returns s in the form peripherals are registered and
// looked up in: a Bluetooth device address (six pairs of hex digits,
// separated by colons or hyphens) in upper case with colons; anything else
// (a serial number) as it is, without surrounding spaces. EINVALID if s is
// empty, longer than MaxPeripheralAddress bytes, or holds a control
// character.
func PeripheralAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", Errorf(EINVALID, "a peripheral address (Bluetooth address or serial number) is required")
	}
	if len(s) > MaxPeripheralAddress {
		return "", Errorf(EINVALID, "peripheral address is %d bytes, at most %d", len(s), MaxPeripheralAddress)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", Errorf(EINVALID, "peripheral address %q holds a control character", s)
		}
	}
	if len(s) == 17 {
		var b strings.Builder
		for i := 0; i < 17; i++ {
			c := s[i]
			if i%3 == 2 {
				if c != ':' && c != '-' {
					return s, nil
				}
				b.WriteByte(':')
				continue
			}
			switch {
			case c >= '0' && c <= '9', c >= 'A' && c <= 'F':
			case c >= 'a' && c <= 'f':
				c -= 'a' - 'A'
			default:
				return s, nil
			}
			b.WriteByte(c)
		}
		return b.String(), nil
	}
	return s, nil
}

// PeripheralStore keeps which devices each gateway relays for.
type PeripheralStore interface {
	// AddPeripheral registers device p.DeviceID as relayed by gateway
	// p.GatewayID under p.Address (already in PeripheralAddress form),
	// setting p.Created. ENOTFOUND if either device does not exist;
	// EINVALID if they are the same device; ECONFLICT if the gateway has a
	// peripheral at that address already, or relays for that device under
	// another address.
	AddPeripheral(ctx context.Context, p *Peripheral) error
	// Peripheral returns the gateway's peripheral at address; ENOTFOUND if
	// none.
	Peripheral(ctx context.Context, gatewayID, address string) (*Peripheral, error)
	// Peripherals returns the gateway's peripherals ordered by address.
	Peripherals(ctx context.Context, gatewayID string) ([]*Peripheral, error)
	// RemovePeripheral removes the gateway's peripheral at address (the
	// device stays registered); ENOTFOUND if none.
	RemovePeripheral(ctx context.Context, gatewayID, address string) error
	// Relays reports whether gateway gatewayID relays for device deviceID.
	Relays(ctx context.Context, gatewayID, deviceID string) (bool, error)
}
