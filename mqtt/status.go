package mqtt

import (
	"bytes"
	"encoding/json"
	"math"
	"time"

	"github.com/vigil-health/vigil"
)

// DeviceStatus is what the device registry shows of a device's
// connection and health. It is proposed for the root package; until then
// StatusRecorder receives it from here.
type DeviceStatus struct {
	DeviceID  string          `json:"device_id"`
	Connected bool            `json:"connected"`
	LastSeen  time.Time       `json:"last_seen"`          // last packet received (UTC)
	Remote    string          `json:"remote,omitempty"`   // address of the current or last connection
	Battery   *float64        `json:"battery,omitempty"`  // percent, 0–100, from the last status message
	Firmware  string          `json:"firmware,omitempty"` // from the last status message
	Signal    *float64        `json:"signal,omitempty"`   // received signal strength in dBm
	Sensor    string          `json:"sensor,omitempty"`   // sensor state as the device names it, e.g. "ok", "off-finger"
	Message   json.RawMessage `json:"message,omitempty"`  // the last status message exactly as sent
	Updated   time.Time       `json:"updated,omitzero"`   // when the last status message arrived
}

func (st *DeviceStatus) clone() DeviceStatus {
	c := *st
	if st.Battery != nil {
		c.Battery = ptr(*st.Battery)
	}
	if st.Signal != nil {
		c.Signal = ptr(*st.Signal)
	}
	c.Message = bytes.Clone(st.Message)
	return c
}

// wireStatus is the JSON a device publishes on devices/{id}/status. Other
// fields are allowed and kept in DeviceStatus.Message.
type wireStatus struct {
	Battery  *float64 `json:"battery"`
	Firmware *string  `json:"firmware"`
	Signal   *float64 `json:"signal"`
	Sensor   *string  `json:"sensor"`
}

// parseStatus checks a status message. Errors are *vigil.Error (EINVALID,
// ETOOLARGE) with a message for the device.
func parseStatus(payload []byte) (wireStatus, error) {
	var w wireStatus
	if len(payload) > MaxStatusBytes {
		return w, vigil.Errorf(vigil.ETOOLARGE, "status message of %d bytes exceeds %d", len(payload), MaxStatusBytes)
	}
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return w, vigil.Errorf(vigil.EINVALID, `status must be a JSON object, e.g. {"battery":87,"firmware":"1.4.2","signal":-67,"sensor":"ok"}`)
	}
	if err := json.Unmarshal(payload, &w); err != nil {
		return w, vigil.Errorf(vigil.EINVALID, "malformed status JSON: %s", trimJSONError(err))
	}
	if w.Battery != nil && (math.IsNaN(*w.Battery) || *w.Battery < 0 || *w.Battery > 100) {
		return w, vigil.Errorf(vigil.EINVALID, `"battery" is a percentage from 0 to 100, not %v`, *w.Battery)
	}
	if w.Signal != nil && (*w.Signal < -200 || *w.Signal > 50) {
		return w, vigil.Errorf(vigil.EINVALID, `"signal" is a strength in dBm from -200 to 50, not %v`, *w.Signal)
	}
	if w.Firmware != nil && len(*w.Firmware) > 64 {
		return w, vigil.Errorf(vigil.EINVALID, `"firmware" is longer than 64 bytes`)
	}
	if w.Sensor != nil && len(*w.Sensor) > 64 {
		return w, vigil.Errorf(vigil.EINVALID, `"sensor" is longer than 64 bytes`)
	}
	return w, nil
}

func trimJSONError(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// apply merges a valid status message into st.
func (st *DeviceStatus) apply(w wireStatus, payload []byte, now time.Time) {
	if w.Battery != nil {
		st.Battery = ptr(*w.Battery)
	}
	if w.Firmware != nil {
		st.Firmware = *w.Firmware
	}
	if w.Signal != nil {
		st.Signal = ptr(*w.Signal)
	}
	if w.Sensor != nil {
		st.Sensor = *w.Sensor
	}
	st.Message = bytes.Clone(payload)
	st.Updated = now
}

// Restore seeds the registry with the statuses of devices from an earlier
// run (as a StatusRecorder saved them), shown as disconnected until they
// connect. A device already known since start keeps its live status.
func (s *Server) Restore(sts []DeviceStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range sts {
		if sts[i].DeviceID == "" {
			continue
		}
		if _, ok := s.status[sts[i].DeviceID]; ok {
			continue
		}
		st := sts[i].clone()
		st.Connected = false
		s.status[st.DeviceID] = &st
	}
}
