package client

import (
	"fmt"
	"strconv"

	"github.com/vigil-health/vigil/jsonvalue"
)

// rawJSON is a request body encoded already; send sends it as it is.
type rawJSON []byte

// appendReadingsBody appends {"readings":[…]} for rs to b, byte for byte
// what encoding/json gives for the same wireReadings (FuzzAppendReadings
// holds them to it), without reflection: a device or gateway posts
// readings all day, and encoding/json spent more on a batch than the server
// spends parsing it. Errors as encoding/json's: a value that is NaN or
// infinite, a time outside years 0–9999.
func appendReadingsBody(b []byte, rs []ReadingIn) ([]byte, error) {
	b = append(b, `{"readings":[`...)
	for i := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendReading(b, &rs[i]); err != nil {
			return nil, fmt.Errorf("reading %d: %w", i, err)
		}
	}
	return append(b, "]}"...), nil
}

// appendReading appends r as wireReading encodes.
func appendReading(b []byte, r *ReadingIn) ([]byte, error) {
	var err error
	b = append(b, `{"code":`...)
	b = jsonvalue.AppendString(b, r.Code)
	if r.Unit != "" || len(r.Components) == 0 { // see wire
		b = append(b, `,"value":`...)
		if b, err = jsonvalue.AppendFloat(b, r.Value); err != nil {
			return nil, err
		}
	}
	if r.Unit != "" {
		b = append(b, `,"unit":`...)
		b = jsonvalue.AppendString(b, r.Unit)
	}
	b = append(b, `,"time":`...)
	if b, err = jsonvalue.AppendTime(b, r.Time.UTC()); err != nil {
		return nil, err
	}
	if r.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, r.Seq, 10)
	}
	if len(r.Flags) > 0 {
		b = append(b, `,"flags":[`...)
		for i, f := range r.Flags {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonvalue.AppendString(b, f)
		}
		b = append(b, ']')
	}
	if len(r.Components) > 0 {
		b = append(b, `,"components":[`...)
		for i, c := range r.Components {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"code":`...)
			b = jsonvalue.AppendString(b, c.Code)
			b = append(b, `,"value":`...)
			if b, err = jsonvalue.AppendFloat(b, c.Value); err != nil {
				return nil, err
			}
			b = append(b, `,"unit":`...)
			b = jsonvalue.AppendString(b, c.Unit)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if r.DeviceID != "" {
		b = append(b, `,"device_id":`...)
		b = jsonvalue.AppendString(b, r.DeviceID)
	}
	if r.PatientID != "" {
		b = append(b, `,"patient_id":`...)
		b = jsonvalue.AppendString(b, r.PatientID)
	}
	return append(b, '}'), nil
}
