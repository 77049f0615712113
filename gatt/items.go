package gatt

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/ingest"
)

// Codes of the readings the characteristics become: LOINC codes of the
// catalogue, and the IEEE 11073 code of the RR interval (MDC_ECG_TIME_PD_RR_GL,
// partition 2, term 16000), for which the catalogue names no LOINC code.
const (
	CodeBloodPressure     = "85354-9"
	CodeSystolic          = "8480-6"
	CodeDiastolic         = "8462-4"
	CodeMeanPressure      = "8478-0"
	CodeHeartRate         = "8867-4"
	CodeRRInterval        = "147072"
	CodeSpO2              = "2708-6"
	CodePulseOximeterRate = "8889-8"
	CodeBodyTemperature   = "8310-5"
	CodeBodyWeight        = "29463-7"
	CodeBodyHeight        = "8302-2"
	CodeBMI               = "39156-5"
	CodeGlucoseCapillary  = "41653-7"
	CodeGlucoseBlood      = "2339-0"
	CodeGlucoseISF        = "99504-3"
	CodeHbA1c             = "4548-4"
	CodeBodyFat           = "41982-0"
)

// Value is one characteristic value as a gateway relayed it, decoded from
// its transport encoding.
type Value struct {
	UUID  uint16    // the characteristic, e.g. UUIDBloodPressure
	Bytes []byte    // the value, as the peripheral sent it
	Time  time.Time // when the gateway received it; its UTC offset is taken as the peripheral's
	Seq   *uint64   // the gateway's sequence number, if it numbers what it relays
}

// Items decodes v and returns the readings it carries as ingest items, in
// the sender's units (ingest converts them to the catalogue's), without
// DeviceID or Origin, which the caller sets. glucoseCtx is the Glucose
// Measurement Context joined to a glucose measurement, or nil.
//
// Time: a reading's time is the device's own time stamp when the payload
// has one the device knew (Bluetooth date-times have no zone: they are read
// in v.Time's UTC offset), else v.Time. Special values (NaN, NRes,
// ±INFINITY, reserved) are data absent: they never become numbers, and a
// field holding one becomes no reading. Status bits become quality flags.
//
// The error (EINVALID) says why v holds no reading Vigil takes: it could
// not be decoded, every value in it is absent, it is not a patient's
// reading (control solution, demonstration or test data), or it is a
// glucose context (taken only with its measurement; see JoinContexts).
// Items is a pure function of its arguments.
func Items(v Value, glucoseCtx *GlucoseContext) ([]ingest.Item, error) {
	switch v.UUID {
	case UUIDBloodPressure:
		m, err := DecodeBloodPressure(v.Bytes)
		if err != nil {
			return nil, err
		}
		return bloodPressureItems(&m, v)
	case UUIDHeartRate:
		m, err := DecodeHeartRate(v.Bytes)
		if err != nil {
			return nil, err
		}
		return heartRateItems(&m, v)
	case UUIDTemperature:
		m, err := DecodeTemperature(v.Bytes)
		if err != nil {
			return nil, err
		}
		return temperatureItems(&m, v)
	case UUIDGlucose:
		m, err := DecodeGlucose(v.Bytes)
		if err != nil {
			return nil, err
		}
		return glucoseItems(&m, glucoseCtx, v)
	case UUIDGlucoseContext:
		if _, err := DecodeGlucoseContext(v.Bytes); err != nil {
			return nil, err
		}
		return nil, vigil.Errorf(vigil.EINVALID, "a glucose measurement context (2A34) is taken only with its glucose measurement (2A18)")
	case UUIDWeight:
		m, err := DecodeWeight(v.Bytes)
		if err != nil {
			return nil, err
		}
		return weightItems(&m, v)
	case UUIDBodyComposition:
		m, err := DecodeBodyComposition(v.Bytes)
		if err != nil {
			return nil, err
		}
		return bodyCompositionItems(&m, v)
	case UUIDPLXSpotCheck:
		m, err := DecodePLXSpotCheck(v.Bytes)
		if err != nil {
			return nil, err
		}
		return plxItems(&m, true, v)
	case UUIDPLXContinuous:
		m, err := DecodePLXContinuous(v.Bytes)
		if err != nil {
			return nil, err
		}
		return plxItems(&m, false, v)
	}
	return nil, vigil.Errorf(vigil.EINVALID, "characteristic %04X is not one Vigil decodes (2A35, 2A18 with 2A34, 2A37, 2A5E, 2A5F, 2A1C, 2A9D, 2A9C)", v.UUID)
}

// itemTime is the time of a reading: the device's, when it sent a date it
// knew, read in the gateway's UTC offset; else the gateway's.
func itemTime(d *DateTime, gw time.Time) time.Time {
	if d != nil {
		if t, ok := d.In(gw.Location()); ok {
			return t
		}
	}
	return gw
}

func rfc3339(t time.Time) string { return t.Format(time.RFC3339Nano) }

func item(code string, value float64, unit string, t string, seq *uint64, flags []string) ingest.Item {
	return ingest.Item{Code: code, Value: &value, Unit: unit, Time: t, Seq: seq, Flags: flags}
}

// absent is the error of a value none of whose fields is a number.
func absent(name string, fields ...string) error {
	return vigil.Errorf(vigil.EINVALID, "%s: no value to store: %s (data absent, never stored as a number)", name, strings.Join(fields, ", "))
}

// flagSet collects quality flag names without repeats, in a fixed order.
type flagSet vigil.Quality

func (f flagSet) names() []string { return vigil.Quality(f).Names() }

func bloodPressureItems(m *BloodPressure, v Value) ([]ingest.Item, error) {
	t := rfc3339(itemTime(m.Time, v.Time))
	unit := "mm[Hg]"
	if m.KPa {
		unit = "kPa"
	}
	var q flagSet
	if m.Status&BPStatusBodyMovement != 0 {
		q |= flagSet(vigil.QualityArtifact)
	}
	if m.Status&(BPStatusCuffLoose|BPStatusIrregularPulse|BPStatusImproperPosition) != 0 {
		q |= flagSet(vigil.QualityQuestionable)
	}
	var out []ingest.Item
	if m.Systolic.Valid() && m.Diastolic.Valid() {
		comps := []ingest.ItemComponent{
			{Code: CodeSystolic, Value: ptr(m.Systolic.Float()), Unit: unit},
			{Code: CodeDiastolic, Value: ptr(m.Diastolic.Float()), Unit: unit},
		}
		if m.Mean.Valid() {
			comps = append(comps, ingest.ItemComponent{Code: CodeMeanPressure, Value: ptr(m.Mean.Float()), Unit: unit})
		}
		out = append(out, ingest.Item{Code: CodeBloodPressure, Time: t, Seq: v.Seq, Flags: q.names(), Components: comps})
	}
	if m.Pulse.Valid() {
		pq := q
		if m.Status&BPStatusPulseRangeMask != 0 {
			pq |= flagSet(vigil.QualityQuestionable) // above or below the device's pulse range
		}
		out = append(out, item(CodeHeartRate, m.Pulse.Float(), "/min", t, v.Seq, pq.names()))
	}
	if len(out) == 0 {
		fields := []string{"systolic " + m.Systolic.Kind.String(), "diastolic " + m.Diastolic.Kind.String()}
		if m.Pulse.Kind != Absent {
			fields = append(fields, "pulse rate "+m.Pulse.Kind.String())
		}
		return nil, absent("blood pressure measurement (2A35)", fields...)
	}
	return out, nil
}

func heartRateItems(m *HeartRate, v Value) ([]ingest.Item, error) {
	var q flagSet
	if m.Contact == ContactNotDetected {
		q |= flagSet(vigil.QualitySensorOff)
	}
	flags := q.names()
	var out []ingest.Item
	if m.BPM != 0 { // 0: the sensor has no rate (no contact, still starting)
		out = append(out, item(CodeHeartRate, float64(m.BPM), "/min", rfc3339(v.Time), v.Seq, flags))
	}
	// The last RR interval ends at about the notification; each earlier
	// one ends where the next began.
	end := v.Time
	rr := make([]ingest.Item, len(m.RR))
	for k := len(m.RR) - 1; k >= 0; k-- {
		rr[k] = item(CodeRRInterval, RRMillis(m.RR[k]), "ms", rfc3339(end), v.Seq, flags)
		end = end.Add(-time.Duration(m.RR[k]) * time.Second / 1024)
	}
	out = append(out, rr...)
	if len(out) == 0 {
		return nil, absent("heart rate measurement (2A37)", "heart rate 0 and no RR intervals")
	}
	return out, nil
}

func temperatureItems(m *Temperature, v Value) ([]ingest.Item, error) {
	if !m.Value.Valid() {
		return nil, absent("temperature measurement (2A1C)", "temperature "+m.Value.Kind.String())
	}
	unit := "Cel"
	if m.Fahrenheit {
		unit = "[degF]"
	}
	return []ingest.Item{item(CodeBodyTemperature, m.Value.Float(), unit, rfc3339(itemTime(m.Time, v.Time)), v.Seq, nil)}, nil
}

// glucoseCode is the LOINC code of a sample type: capillary blood (1, 2),
// interstitial fluid (9), and blood otherwise.
func glucoseCode(sampleType uint8) string {
	switch sampleType {
	case 1, 2:
		return CodeGlucoseCapillary
	case 9:
		return CodeGlucoseISF
	}
	return CodeGlucoseBlood
}

func glucoseItems(m *Glucose, c *GlucoseContext, v Value) ([]ingest.Item, error) {
	const name = "glucose measurement (2A18)"
	if m.Type == GlucoseTypeControl || m.Location == GlucoseLocationControl {
		return nil, vigil.Errorf(vigil.EINVALID, "%s %d: control solution, not a patient's reading", name, m.Seq)
	}
	if m.Concentration.Kind == Absent {
		return nil, vigil.Errorf(vigil.EINVALID, "%s %d: carries no concentration", name, m.Seq)
	}
	if !m.Concentration.Valid() {
		return nil, absent(name, fmt.Sprintf("concentration %s", m.Concentration.Kind))
	}
	tm := v.Time
	if t, ok := m.Base.In(v.Time.Location()); ok {
		tm = t.Add(time.Duration(m.Offset) * time.Minute)
	}
	t := rfc3339(tm)
	var q flagSet
	if m.Status&^GlucoseBatteryLow != 0 {
		q |= flagSet(vigil.QualityQuestionable)
	}
	var out []ingest.Item
	if m.MolPerL {
		out = append(out, item(glucoseCode(m.Type), m.Concentration.Scaled(3), "mmol/L", t, v.Seq, q.names())) // mol/L × 1000
	} else {
		out = append(out, item(glucoseCode(m.Type), m.Concentration.Scaled(5), "mg/dL", t, v.Seq, q.names())) // kg/L × 100000
	}
	if c != nil && c.HbA1c.Valid() {
		out = append(out, item(CodeHbA1c, c.HbA1c.Float(), "%", t, v.Seq, nil))
	}
	return out, nil
}

// Weight resolutions: 0.005 kg and 0.01 lb; height 0.001 m (0.1 cm) and
// 0.1 in; BMI 0.1 kg/m².
func weightItems(m *Weight, v Value) ([]ingest.Item, error) {
	if m.Raw == WeightUnsuccessful {
		return nil, absent("weight measurement (2A9D)", "measurement unsuccessful (0xFFFF)")
	}
	t := rfc3339(itemTime(m.Time, v.Time))
	var out []ingest.Item
	if m.Imperial {
		out = append(out, item(CodeBodyWeight, scale(int64(m.Raw), -2), "[lb_av]", t, v.Seq, nil))
	} else {
		out = append(out, item(CodeBodyWeight, scale(int64(m.Raw)*5, -3), "kg", t, v.Seq, nil))
	}
	if m.HasBMI {
		if m.BMI != 0 && m.BMI != 0xFFFF {
			out = append(out, item(CodeBMI, scale(int64(m.BMI), -1), "kg/m2", t, v.Seq, nil))
		}
		if m.Height != 0 && m.Height != 0xFFFF {
			if m.Imperial {
				out = append(out, item(CodeBodyHeight, scale(int64(m.Height), -1), "[in_i]", t, v.Seq, nil))
			} else {
				out = append(out, item(CodeBodyHeight, scale(int64(m.Height), -1), "cm", t, v.Seq, nil))
			}
		}
	}
	return out, nil
}

// bodyCompositionItems: the body fat percentage, and the weight and height
// when sent (as a Weight Measurement's). The other fields have no code in
// the catalogue. A measurement split over several values is refused: its
// parts cannot be told apart from whole measurements.
func bodyCompositionItems(m *BodyComposition, v Value) ([]ingest.Item, error) {
	const name = "body composition measurement (2A9C)"
	if m.MultiplePacket {
		return nil, vigil.Errorf(vigil.EINVALID, "%s: a measurement split over several values is not taken", name)
	}
	if m.BodyFat == WeightUnsuccessful {
		return nil, absent(name, "measurement unsuccessful (0xFFFF)")
	}
	t := rfc3339(itemTime(m.Time, v.Time))
	out := []ingest.Item{item(CodeBodyFat, scale(int64(m.BodyFat), -1), "%", t, v.Seq, nil)}
	if m.Present&BodyCompWeight != 0 && m.Weight != WeightUnsuccessful {
		if m.Imperial {
			out = append(out, item(CodeBodyWeight, scale(int64(m.Weight), -2), "[lb_av]", t, v.Seq, nil))
		} else {
			out = append(out, item(CodeBodyWeight, scale(int64(m.Weight)*5, -3), "kg", t, v.Seq, nil))
		}
	}
	if m.Present&BodyCompHeight != 0 && m.Height != 0 && m.Height != 0xFFFF {
		if m.Imperial {
			out = append(out, item(CodeBodyHeight, scale(int64(m.Height), -1), "[in_i]", t, v.Seq, nil))
		} else {
			out = append(out, item(CodeBodyHeight, scale(int64(m.Height), -1), "cm", t, v.Seq, nil))
		}
	}
	return out, nil
}

func plxItems(m *PLX, spot bool, v Value) ([]ingest.Item, error) {
	name := "PLX continuous measurement (2A5F)"
	if spot {
		name = "PLX spot-check measurement (2A5E)"
	}
	if s := m.MeasurementStatus & plxNotClinical; s != 0 {
		var why []string
		for _, b := range []struct {
			bit  uint16
			text string
		}{{PLXDemonstration, "demonstration data"}, {PLXTesting, "testing data"}, {PLXMeasurementUnavail, "measurement unavailable"}, {PLXInvalidMeasurement, "invalid measurement"}} {
			if s&b.bit != 0 {
				why = append(why, b.text)
			}
		}
		return nil, vigil.Errorf(vigil.EINVALID, "%s: not a clinical reading: the device flags it %s", name, strings.Join(why, ", "))
	}
	var q flagSet
	if m.MeasurementStatus&plxMeasurementQuestions != 0 || m.DeviceStatus&(PLXEquipmentMalfunction|PLXSensorMalfunctioning|PLXLowPerfusion|PLXQuestionablePulse) != 0 {
		q |= flagSet(vigil.QualityQuestionable)
	}
	if m.MeasurementStatus&PLXCalibrationOngoing != 0 {
		q |= flagSet(vigil.QualityCalibrating)
	}
	if m.DeviceStatus&(PLXInadequateSignal|PLXPoorSignal|PLXErraticSignal|PLXNonPulsatile|PLXInterference) != 0 {
		q |= flagSet(vigil.QualityArtifact)
	}
	if m.DeviceStatus&(PLXSensorNotOnUser|PLXSensorDisplaced|PLXSensorDisconnected) != 0 {
		q |= flagSet(vigil.QualitySensorOff)
	}
	tm := v.Time
	if spot && !m.ClockNotSet {
		tm = itemTime(m.Time, v.Time)
	}
	t, flags := rfc3339(tm), q.names()
	var out []ingest.Item
	if m.SpO2.Valid() {
		out = append(out, item(CodeSpO2, m.SpO2.Float(), "%", t, v.Seq, flags))
	}
	if m.PulseRate.Valid() {
		out = append(out, item(CodePulseOximeterRate, m.PulseRate.Float(), "/min", t, v.Seq, flags))
	}
	if len(out) == 0 {
		return nil, absent(name, "SpO2 "+m.SpO2.Kind.String(), "pulse rate "+m.PulseRate.Kind.String())
	}
	return out, nil
}

func ptr(f float64) *float64 { return &f }
