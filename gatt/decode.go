package gatt

import (
	"encoding/binary"
	"time"

	"github.com/vigil-health/vigil"
)

// Characteristic UUIDs (16-bit, assigned by the Bluetooth SIG) Vigil decodes.
const (
	UUIDBloodPressure  uint16 = 0x2A35 // Blood Pressure Measurement
	UUIDGlucose        uint16 = 0x2A18 // Glucose Measurement
	UUIDGlucoseContext uint16 = 0x2A34 // Glucose Measurement Context
	UUIDHeartRate      uint16 = 0x2A37 // Heart Rate Measurement
	UUIDPLXSpotCheck   uint16 = 0x2A5E // PLX Spot-Check Measurement
	UUIDPLXContinuous  uint16 = 0x2A5F // PLX Continuous Measurement
	UUIDTemperature    uint16 = 0x2A1C // Temperature Measurement
	UUIDWeight         uint16 = 0x2A9D // Weight Measurement
)

// The decoders below are pure functions of the payload: no I/O, no clock,
// no allocation except the RR intervals of a heart rate. Each reads the
// flags, computes the length they promise, refuses a payload shorter than
// that (EINVALID) and only then reads, so none ever reads past the end or
// panics, whatever the input. Bytes after the last field the flags promise
// are ignored, as later versions of a profile may append fields. All
// multi-byte fields are little-endian.

// short is the error of a payload shorter than its flags promise.
func short(name string, got, want int) error {
	return vigil.Errorf(vigil.EINVALID, "%s: %d bytes, but its flags promise %d", name, got, want)
}

// field is an optional field of a characteristic: present when its flag
// bit is set, n bytes long.
type field struct {
	bit byte
	n   int
}

// flagged returns the flags byte of b (its first) after checking that b
// holds base bytes (the flags and the mandatory fields) and every optional
// field its flags announce; otherwise the error says how many bytes the
// flags promise.
func flagged(name string, b []byte, base int, fields ...field) (byte, error) {
	if len(b) < 1 {
		return 0, short(name, len(b), base)
	}
	f, want := b[0], base
	for _, fl := range fields {
		if f&fl.bit != 0 {
			want += fl.n
		}
	}
	if len(b) < want {
		return f, short(name, len(b), want)
	}
	return f, nil
}

func u16(b []byte, i int) uint16 { return binary.LittleEndian.Uint16(b[i:]) }
func sf(b []byte, i int) Number  { return SFLOAT(binary.LittleEndian.Uint16(b[i:])) }

// DateTime is a Bluetooth Date Time (7 bytes): the device's local clock,
// with no time zone. A zero year, month or day means the device does not
// know the date.
type DateTime struct {
	Year                 uint16
	Month, Day           uint8
	Hour, Minute, Second uint8
}

// Known reports whether the device knew the date (no zero year, month or day).
func (d DateTime) Known() bool { return d.Year != 0 && d.Month != 0 && d.Day != 0 }

// In returns d as a time in loc. ok is false when d is not Known.
func (d DateTime) In(loc *time.Location) (t time.Time, ok bool) {
	if !d.Known() {
		return time.Time{}, false
	}
	return time.Date(int(d.Year), time.Month(d.Month), int(d.Day), int(d.Hour), int(d.Minute), int(d.Second), 0, loc), true
}

const dateTimeLen = 7

// dateTime decodes 7 bytes at b[i:], which the caller has checked are
// there. A field out of its range (month 13, hour 24) is an error; zeros
// in the date are "unknown", not errors.
func dateTime(name string, b []byte, i int) (DateTime, error) {
	d := DateTime{Year: u16(b, i), Month: b[i+2], Day: b[i+3], Hour: b[i+4], Minute: b[i+5], Second: b[i+6]}
	if (d.Year != 0 && (d.Year < 1582 || d.Year > 9999)) || d.Month > 12 || d.Day > 31 || d.Hour > 23 || d.Minute > 59 || d.Second > 59 {
		return d, vigil.Errorf(vigil.EINVALID, "%s: time stamp %04d-%02d-%02d %02d:%02d:%02d is not a date and time", name, d.Year, d.Month, d.Day, d.Hour, d.Minute, d.Second)
	}
	if d.Known() && int(d.Day) > daysIn(d.Year, d.Month) {
		return d, vigil.Errorf(vigil.EINVALID, "%s: time stamp %04d-%02d-%02d is not a date", name, d.Year, d.Month, d.Day)
	}
	return d, nil
}

func daysIn(y uint16, m uint8) int {
	return time.Date(int(y), time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// BloodPressure is a Blood Pressure Measurement (0x2A35).
type BloodPressure struct {
	KPa                       bool   // units: kPa when set, mmHg when clear
	Systolic, Diastolic, Mean Number // SFLOAT, in the unit above
	Time                      *DateTime
	Pulse                     Number // SFLOAT, beats per minute; Absent if not sent
	UserID                    uint8  // 255: unknown user
	HasUserID                 bool
	Status                    uint16 // measurement status bits (BPStatus*)
	HasStatus                 bool
}

// Blood pressure measurement status bits.
const (
	BPStatusBodyMovement     = 1 << 0 // body movement during the measurement
	BPStatusCuffLoose        = 1 << 1 // cuff too loose
	BPStatusIrregularPulse   = 1 << 2 // irregular pulse detected
	BPStatusPulseRangeMask   = 3 << 3 // pulse rate range: 0 within, 1 above, 2 below the device's limits
	BPStatusImproperPosition = 1 << 5 // improper measurement position
)

// DecodeBloodPressure decodes a Blood Pressure Measurement. Flags: bit 0
// units (kPa), 1 time stamp, 2 pulse rate, 3 user id, 4 measurement status.
func DecodeBloodPressure(b []byte) (BloodPressure, error) {
	const name = "blood pressure measurement (2A35)"
	var m BloodPressure
	f, err := flagged(name, b, 7, field{0x02, dateTimeLen}, field{0x04, 2}, field{0x08, 1}, field{0x10, 2})
	if err != nil {
		return m, err
	}
	m.KPa = f&0x01 != 0
	m.Systolic, m.Diastolic, m.Mean = sf(b, 1), sf(b, 3), sf(b, 5)
	i := 7
	if f&0x02 != 0 {
		d, err := dateTime(name, b, i)
		if err != nil {
			return m, err
		}
		m.Time = &d
		i += dateTimeLen
	}
	if f&0x04 != 0 {
		m.Pulse = sf(b, i)
		i += 2
	}
	if f&0x08 != 0 {
		m.UserID, m.HasUserID = b[i], true
		i++
	}
	if f&0x10 != 0 {
		m.Status, m.HasStatus = u16(b, i), true
	}
	return m, nil
}

// Sensor contact of a heart rate measurement (flags bits 1–2).
type Contact uint8

// Contact states.
const (
	ContactUnsupported Contact = 0 // the sensor does not report contact (bits 0 or 1)
	ContactNotDetected Contact = 2 // supported, and the sensor is not in contact
	ContactDetected    Contact = 3 // supported, and in contact
)

// HeartRate is a Heart Rate Measurement (0x2A37).
type HeartRate struct {
	BPM       uint16
	Contact   Contact
	EnergyKJ  uint16 // energy expended since last reset, kilojoules
	HasEnergy bool
	// RR holds the RR intervals, oldest first, in the unit of the
	// characteristic: 1/1024 second (RRMillis converts).
	RR []uint16
}

// RRMillis converts an RR interval of 1/1024 s to milliseconds:
// raw × 1000 / 1024, exact in a float64 (1000/1024 = 125/128).
func RRMillis(raw uint16) float64 { return float64(raw) * 125 / 128 }

// DecodeHeartRate decodes a Heart Rate Measurement. Flags: bit 0 value
// format (uint16 when set, uint8 when clear), bits 1–2 sensor contact, bit 3
// energy expended, bit 4 RR intervals (as many as the bytes left hold; an
// odd byte left over is an error).
func DecodeHeartRate(b []byte) (HeartRate, error) {
	const name = "heart rate measurement (2A37)"
	var m HeartRate
	f, err := flagged(name, b, 2, field{0x01, 1}, field{0x08, 2})
	if err != nil {
		return m, err
	}
	i := 1
	if f&0x01 != 0 {
		m.BPM = u16(b, i)
		i += 2
	} else {
		m.BPM = uint16(b[i])
		i++
	}
	if c := Contact(f >> 1 & 0x03); c == ContactNotDetected || c == ContactDetected {
		m.Contact = c
	}
	if f&0x08 != 0 {
		m.EnergyKJ, m.HasEnergy = u16(b, i), true
		i += 2
	}
	if f&0x10 != 0 {
		rest := b[i:]
		if len(rest)%2 != 0 {
			return m, vigil.Errorf(vigil.EINVALID, "%s: RR intervals take 2 bytes each, but %d bytes are left", name, len(rest))
		}
		if len(rest) > 0 {
			m.RR = make([]uint16, len(rest)/2)
			for k := range m.RR {
				m.RR[k] = u16(rest, 2*k)
			}
		}
	}
	return m, nil
}

// Temperature is a Temperature Measurement (0x2A1C).
type Temperature struct {
	Fahrenheit bool   // units: °F when set, °C when clear
	Value      Number // FLOAT, in the unit above
	Time       *DateTime
	Type       uint8 // body site (1 armpit … 9 tympanum); 0 when not sent
}

// DecodeTemperature decodes a Temperature Measurement. Flags: bit 0 units
// (°F), 1 time stamp, 2 temperature type.
func DecodeTemperature(b []byte) (Temperature, error) {
	const name = "temperature measurement (2A1C)"
	var m Temperature
	f, err := flagged(name, b, 5, field{0x02, dateTimeLen}, field{0x04, 1})
	if err != nil {
		return m, err
	}
	m.Fahrenheit = f&0x01 != 0
	m.Value = FLOAT(binary.LittleEndian.Uint32(b[1:]))
	i := 5
	if f&0x02 != 0 {
		d, err := dateTime(name, b, i)
		if err != nil {
			return m, err
		}
		m.Time = &d
		i += dateTimeLen
	}
	if f&0x04 != 0 {
		m.Type = b[i]
	}
	return m, nil
}

// Glucose is a Glucose Measurement (0x2A18).
type Glucose struct {
	Seq       uint16
	Base      DateTime // base time; the measurement was taken at Base + Offset minutes
	Offset    int16    // minutes
	HasOffset bool
	// Concentration is in kg/L, or mol/L when MolPerL; Absent when the
	// flags say no concentration follows.
	Concentration Number
	MolPerL       bool
	Type          uint8 // sample type (1 capillary whole blood … 9 interstitial fluid, 10 control solution)
	Location      uint8 // sample location (1 finger, 2 alternate site, 3 earlobe, 4 control solution, 15 not available)
	Status        uint16
	HasStatus     bool
	// ContextFollows says a Glucose Measurement Context with the same
	// sequence number follows.
	ContextFollows bool
}

// Glucose sample types and locations that are not a patient's sample.
const (
	GlucoseTypeControl     = 10
	GlucoseLocationControl = 4
)

// Glucose sensor status annunciation bits.
const (
	GlucoseBatteryLow       = 1 << 0
	GlucoseSensorFault      = 1 << 1
	GlucoseSampleTooSmall   = 1 << 2
	GlucoseStripInsertion   = 1 << 3
	GlucoseWrongStrip       = 1 << 4
	GlucoseResultTooHigh    = 1 << 5
	GlucoseResultTooLow     = 1 << 6
	GlucoseTempTooHigh      = 1 << 7
	GlucoseTempTooLow       = 1 << 8
	GlucoseStripPulledEarly = 1 << 9
	GlucoseDeviceFault      = 1 << 10
	GlucoseTimeFault        = 1 << 11
)

// DecodeGlucose decodes a Glucose Measurement. Flags: bit 0 time offset, 1
// concentration with type and location, 2 units (mol/L), 3 sensor status,
// 4 context follows.
func DecodeGlucose(b []byte) (Glucose, error) {
	const name = "glucose measurement (2A18)"
	var m Glucose
	f, err := flagged(name, b, 10, field{0x01, 2}, field{0x02, 3}, field{0x08, 2})
	if err != nil {
		return m, err
	}
	m.Seq = u16(b, 1)
	d, err := dateTime(name, b, 3)
	if err != nil {
		return m, err
	}
	m.Base = d
	i := 10
	if f&0x01 != 0 {
		m.Offset, m.HasOffset = int16(u16(b, i)), true
		i += 2
	}
	m.MolPerL = f&0x04 != 0
	if f&0x02 != 0 {
		m.Concentration = sf(b, i)
		m.Type, m.Location = b[i+2]&0x0F, b[i+2]>>4
		i += 3
	}
	if f&0x08 != 0 {
		m.Status, m.HasStatus = u16(b, i), true
	}
	m.ContextFollows = f&0x10 != 0
	return m, nil
}

// GlucoseContext is a Glucose Measurement Context (0x2A34): what was going
// on around the glucose measurement with the same sequence number.
type GlucoseContext struct {
	Seq         uint16
	Extended    uint8 // extended flags (reserved)
	HasExtended bool
	CarbID      uint8  // 1 breakfast, 2 lunch, 3 dinner, 4 snack, 5 drink, 6 supper, 7 brunch
	Carbs       Number // kilograms; Absent if not sent
	Meal        uint8  // 1 preprandial, 2 postprandial, 3 fasting, 4 casual, 5 bedtime; 0 if not sent
	Tester      uint8  // 1 self, 2 health care professional, 3 lab test, 15 not available; 0 if not sent
	Health      uint8  // 1 minor issues, 2 major issues, 3 during menses, 4 under stress, 5 none, 15 not available
	// Exercise duration in seconds (65535: overrun) and intensity in
	// percent, when HasExercise.
	ExerciseSeconds   uint16
	ExerciseIntensity uint8
	HasExercise       bool
	MedicationID      uint8  // 1 rapid acting insulin … 5 pre-mixed insulin
	Medication        Number // kilograms, or litres when MedicationLitres; Absent if not sent
	MedicationLitres  bool
	HbA1c             Number // percent; Absent if not sent
}

// DecodeGlucoseContext decodes a Glucose Measurement Context. Flags: bit 0
// carbohydrate, 1 meal, 2 tester and health, 3 exercise, 4 medication, 5
// medication units (litres), 6 HbA1c, 7 extended flags.
func DecodeGlucoseContext(b []byte) (GlucoseContext, error) {
	const name = "glucose measurement context (2A34)"
	var m GlucoseContext
	f, err := flagged(name, b, 3, field{0x80, 1}, field{0x01, 3}, field{0x02, 1}, field{0x04, 1}, field{0x08, 3}, field{0x10, 3}, field{0x40, 2})
	if err != nil {
		return m, err
	}
	m.Seq = u16(b, 1)
	i := 3
	if f&0x80 != 0 {
		m.Extended, m.HasExtended = b[i], true
		i++
	}
	if f&0x01 != 0 {
		m.CarbID, m.Carbs = b[i], sf(b, i+1)
		i += 3
	}
	if f&0x02 != 0 {
		m.Meal = b[i]
		i++
	}
	if f&0x04 != 0 {
		m.Tester, m.Health = b[i]&0x0F, b[i]>>4
		i++
	}
	if f&0x08 != 0 {
		m.ExerciseSeconds, m.ExerciseIntensity, m.HasExercise = u16(b, i), b[i+2], true
		i += 3
	}
	if f&0x10 != 0 {
		m.MedicationID, m.Medication = b[i], sf(b, i+1)
		m.MedicationLitres = f&0x20 != 0
		i += 3
	}
	if f&0x40 != 0 {
		m.HbA1c = sf(b, i)
	}
	return m, nil
}

// Weight is a Weight Measurement (0x2A9D).
type Weight struct {
	Imperial bool   // units: pound and inch when set, kilogram and metre when clear
	Raw      uint16 // weight in 0.005 kg, or 0.01 lb when Imperial; 0xFFFF: measurement unsuccessful
	Time     *DateTime
	UserID   uint8 // 255: unknown user
	HasUser  bool
	BMI      uint16 // 0.1 kg/m², when HasBMI
	Height   uint16 // 0.001 m, or 0.1 in when Imperial, when HasBMI
	HasBMI   bool
}

// WeightUnsuccessful is the weight a scale sends when it could not measure.
const WeightUnsuccessful = 0xFFFF

// DecodeWeight decodes a Weight Measurement. Flags: bit 0 units
// (imperial), 1 time stamp, 2 user id, 3 BMI and height.
func DecodeWeight(b []byte) (Weight, error) {
	const name = "weight measurement (2A9D)"
	var m Weight
	f, err := flagged(name, b, 3, field{0x02, dateTimeLen}, field{0x04, 1}, field{0x08, 4})
	if err != nil {
		return m, err
	}
	m.Imperial = f&0x01 != 0
	m.Raw = u16(b, 1)
	i := 3
	if f&0x02 != 0 {
		d, err := dateTime(name, b, i)
		if err != nil {
			return m, err
		}
		m.Time = &d
		i += dateTimeLen
	}
	if f&0x04 != 0 {
		m.UserID, m.HasUser = b[i], true
		i++
	}
	if f&0x08 != 0 {
		m.BMI, m.Height, m.HasBMI = u16(b, i), u16(b, i+2), true
	}
	return m, nil
}

// PLX measurement status bits (both PLX characteristics).
const (
	PLXMeasurementOngoing   = 1 << 5
	PLXEarlyEstimate        = 1 << 6
	PLXValidated            = 1 << 7
	PLXFullyQualified       = 1 << 8
	PLXFromStorage          = 1 << 9
	PLXDemonstration        = 1 << 10
	PLXTesting              = 1 << 11
	PLXCalibrationOngoing   = 1 << 12
	PLXMeasurementUnavail   = 1 << 13
	PLXQuestionableMeasure  = 1 << 14
	PLXInvalidMeasurement   = 1 << 15
	plxNotClinical          = PLXDemonstration | PLXTesting | PLXMeasurementUnavail | PLXInvalidMeasurement
	plxMeasurementQuestions = PLXMeasurementOngoing | PLXEarlyEstimate | PLXQuestionableMeasure
)

// PLX device and sensor status bits (24 bits).
const (
	PLXEquipmentMalfunction = 1 << 1
	PLXInadequateSignal     = 1 << 3
	PLXPoorSignal           = 1 << 4
	PLXLowPerfusion         = 1 << 5
	PLXErraticSignal        = 1 << 6
	PLXNonPulsatile         = 1 << 7
	PLXQuestionablePulse    = 1 << 8
	PLXInterference         = 1 << 10
	PLXSensorNotOnUser      = 1 << 11
	PLXSensorDisplaced      = 1 << 13
	PLXSensorMalfunctioning = 1 << 14
	PLXSensorDisconnected   = 1 << 15
)

// PLX is a pulse oximeter's measurement: a PLX Spot-Check (0x2A5E) or PLX
// Continuous (0x2A5F) Measurement.
type PLX struct {
	SpO2, PulseRate Number // SFLOAT, percent and beats per minute
	// Fast and Slow are the continuous measurement's further averaged
	// pairs (SpO2, pulse rate); Absent in a spot-check.
	Fast, Slow        [2]Number
	Time              *DateTime // spot-check only
	ClockNotSet       bool      // spot-check: the device's clock is not set, so Time is not to be trusted
	MeasurementStatus uint16
	HasMeasurement    bool
	DeviceStatus      uint32 // 24 bits
	HasDeviceStatus   bool
	PulseAmplitudeIdx Number // percent; Absent if not sent
}

// DecodePLXSpotCheck decodes a PLX Spot-Check Measurement. Flags: bit 0
// time stamp, 1 measurement status, 2 device and sensor status, 3 pulse
// amplitude index, 4 device clock not set.
func DecodePLXSpotCheck(b []byte) (PLX, error) {
	const name = "PLX spot-check measurement (2A5E)"
	var m PLX
	f, err := flagged(name, b, 5, field{0x01, dateTimeLen}, field{0x02, 2}, field{0x04, 3}, field{0x08, 2})
	if err != nil {
		return m, err
	}
	m.SpO2, m.PulseRate = sf(b, 1), sf(b, 3)
	i := 5
	if f&0x01 != 0 {
		d, err := dateTime(name, b, i)
		if err != nil {
			return m, err
		}
		m.Time = &d
		i += dateTimeLen
	}
	plxTail(&m, f&0x02 != 0, f&0x04 != 0, f&0x08 != 0, b, i)
	m.ClockNotSet = f&0x10 != 0
	return m, nil
}

// DecodePLXContinuous decodes a PLX Continuous Measurement. Flags: bit 0
// SpO2PR-Fast, 1 SpO2PR-Slow, 2 measurement status, 3 device and sensor
// status, 4 pulse amplitude index.
func DecodePLXContinuous(b []byte) (PLX, error) {
	const name = "PLX continuous measurement (2A5F)"
	var m PLX
	f, err := flagged(name, b, 5, field{0x01, 4}, field{0x02, 4}, field{0x04, 2}, field{0x08, 3}, field{0x10, 2})
	if err != nil {
		return m, err
	}
	m.SpO2, m.PulseRate = sf(b, 1), sf(b, 3)
	i := 5
	if f&0x01 != 0 {
		m.Fast = [2]Number{sf(b, i), sf(b, i+2)}
		i += 4
	}
	if f&0x02 != 0 {
		m.Slow = [2]Number{sf(b, i), sf(b, i+2)}
		i += 4
	}
	plxTail(&m, f&0x04 != 0, f&0x08 != 0, f&0x10 != 0, b, i)
	return m, nil
}

// plxTail reads the fields both PLX characteristics end with, whose
// length the caller has checked.
func plxTail(m *PLX, status, device, pai bool, b []byte, i int) {
	if status {
		m.MeasurementStatus, m.HasMeasurement = u16(b, i), true
		i += 2
	}
	if device {
		m.DeviceStatus, m.HasDeviceStatus = uint32(b[i])|uint32(b[i+1])<<8|uint32(b[i+2])<<16, true
		i += 3
	}
	if pai {
		m.PulseAmplitudeIdx = sf(b, i)
	}
}

// UUIDBodyComposition is the Body Composition Measurement characteristic.
const UUIDBodyComposition uint16 = 0x2A9C

// BodyComposition is a Body Composition Measurement (0x2A9C). Masses are
// in 0.005 kg, or 0.01 lb when Imperial; each optional field is kept with
// whether it was sent.
type BodyComposition struct {
	Imperial bool
	// BodyFat is the body fat percentage in 0.1 %; 0xFFFF: measurement
	// unsuccessful.
	BodyFat        uint16
	Time           *DateTime
	UserID         uint8
	HasUser        bool
	BasalKJ        uint16 // basal metabolism, kJ
	MusclePercent  uint16 // 0.1 %
	MuscleMass     uint16
	FatFreeMass    uint16
	SoftLeanMass   uint16
	BodyWaterMass  uint16
	Impedance      uint16 // 0.1 Ω
	Weight         uint16
	Height         uint16 // 0.001 m, or 0.1 in when Imperial
	Present        uint16 // the flags of the optional fields sent (BodyComp*)
	MultiplePacket bool   // the measurement is split over several values
}

// Body composition flags (bits of a 16-bit flags field).
const (
	BodyCompBasal        = 1 << 3
	BodyCompMuscle       = 1 << 4
	BodyCompMuscleMass   = 1 << 5
	BodyCompFatFreeMass  = 1 << 6
	BodyCompSoftLeanMass = 1 << 7
	BodyCompWaterMass    = 1 << 8
	BodyCompImpedance    = 1 << 9
	BodyCompWeight       = 1 << 10
	BodyCompHeight       = 1 << 11
	bodyCompMultiple     = 1 << 12
)

// DecodeBodyComposition decodes a Body Composition Measurement. Flags (16
// bits): bit 0 units (imperial), 1 time stamp, 2 user id, 3 basal
// metabolism, 4 muscle percentage, 5 muscle mass, 6 fat free mass, 7 soft
// lean mass, 8 body water mass, 9 impedance, 10 weight, 11 height, 12 the
// measurement spans several values. Fields: flags, body fat percentage,
// then each present field in that order (16 bits each; the time stamp 7
// bytes, the user id 1).
func DecodeBodyComposition(b []byte) (BodyComposition, error) {
	const name = "body composition measurement (2A9C)"
	var m BodyComposition
	if len(b) < 2 {
		return m, short(name, len(b), 4)
	}
	f := u16(b, 0)
	want := 4
	if f&0x02 != 0 {
		want += dateTimeLen
	}
	if f&0x04 != 0 {
		want++
	}
	for bit := uint16(BodyCompBasal); bit <= BodyCompHeight; bit <<= 1 {
		if f&bit != 0 {
			want += 2
		}
	}
	if len(b) < want {
		return m, short(name, len(b), want)
	}
	m.Imperial = f&0x01 != 0
	m.MultiplePacket = f&bodyCompMultiple != 0
	m.BodyFat = u16(b, 2)
	i := 4
	if f&0x02 != 0 {
		d, err := dateTime(name, b, i)
		if err != nil {
			return m, err
		}
		m.Time = &d
		i += dateTimeLen
	}
	if f&0x04 != 0 {
		m.UserID, m.HasUser = b[i], true
		i++
	}
	for _, fl := range [...]struct {
		bit uint16
		v   *uint16
	}{{BodyCompBasal, &m.BasalKJ}, {BodyCompMuscle, &m.MusclePercent}, {BodyCompMuscleMass, &m.MuscleMass},
		{BodyCompFatFreeMass, &m.FatFreeMass}, {BodyCompSoftLeanMass, &m.SoftLeanMass}, {BodyCompWaterMass, &m.BodyWaterMass},
		{BodyCompImpedance, &m.Impedance}, {BodyCompWeight, &m.Weight}, {BodyCompHeight, &m.Height}} {
		if f&fl.bit != 0 {
			*fl.v = u16(b, i)
			m.Present |= fl.bit
			i += 2
		}
	}
	return m, nil
}
