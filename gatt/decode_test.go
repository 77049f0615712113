package gatt_test

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gatt"
)

// The payloads in these tests are laid out by hand from the characteristic
// definitions (docs/gatt.md gives the layouts): flags first, then the
// fields their bits promise, little-endian. Each comment gives the values.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sfl(m int32, e int8) gatt.Number {
	return gatt.Number{Mantissa: m, Exponent: e, Kind: gatt.Finite}
}

var dec7 = &gatt.DateTime{Year: 2026, Month: 12, Day: 7, Hour: 9, Minute: 30}

func TestDecodeBloodPressure(t *testing.T) {
	for _, c := range []struct {
		name, hex string
		want      gatt.BloodPressure
	}{
		// 120/80 mmHg, mean 93, 2026-12-07 09:30:00, pulse 72, user 1, body movement.
		{"all fields", "1e 7800 5000 5d00 ea070c07091e00 4800 01 0100", gatt.BloodPressure{
			Systolic: sfl(120, 0), Diastolic: sfl(80, 0), Mean: sfl(93, 0), Time: dec7,
			Pulse: sfl(72, 0), UserID: 1, HasUserID: true, Status: gatt.BPStatusBodyMovement, HasStatus: true}},
		// 16.0/10.7 kPa, mean NaN.
		{"kPa and NaN", "01 a0f0 6bf0 ff07", gatt.BloodPressure{KPa: true,
			Systolic: sfl(160, -1), Diastolic: sfl(107, -1), Mean: gatt.Number{Kind: gatt.NaN}}},
		{"trailing bytes ignored", "00 7800 5000 5d00 ffff", gatt.BloodPressure{
			Systolic: sfl(120, 0), Diastolic: sfl(80, 0), Mean: sfl(93, 0)}},
	} {
		got, err := gatt.DecodeBloodPressure(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDecodeHeartRate(t *testing.T) {
	for _, c := range []struct {
		name, hex string
		want      gatt.HeartRate
	}{
		{"uint8", "00 48", gatt.HeartRate{BPM: 72}},
		{"uint16", "01 2c01", gatt.HeartRate{BPM: 300}},
		{"energy", "08 3c 0001", gatt.HeartRate{BPM: 60, EnergyKJ: 256, HasEnergy: true}},
		// contact detected, RR 1024/1024 s and 512/1024 s.
		{"contact and RR", "16 48 0004 0002", gatt.HeartRate{BPM: 72, Contact: gatt.ContactDetected, RR: []uint16{1024, 512}}},
		{"no contact", "04 4b", gatt.HeartRate{BPM: 75, Contact: gatt.ContactNotDetected}},
		{"contact bits 1 mean unsupported", "02 4b", gatt.HeartRate{BPM: 75}},
		{"RR flag, no intervals", "10 48", gatt.HeartRate{BPM: 72}},
	} {
		got, err := gatt.DecodeHeartRate(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if got := gatt.RRMillis(1024); got != 1000 {
		t.Errorf("RRMillis(1024) = %v, want 1000", got)
	}
	if got := gatt.RRMillis(1); got != 0.9765625 {
		t.Errorf("RRMillis(1) = %v, want 0.9765625", got)
	}
}

func TestDecodeTemperature(t *testing.T) {
	for _, c := range []struct {
		name, hex string
		want      gatt.Temperature
	}{
		{"celsius", "00 6f0100ff", gatt.Temperature{Value: sfl(367, -1)}},
		// 98.6 °F, 2026-12-07 09:30:00, mouth (6).
		{"fahrenheit, time, type", "07 da0300ff ea070c07091e00 06", gatt.Temperature{Fahrenheit: true, Value: sfl(986, -1), Time: dec7, Type: 6}},
		{"NaN", "00 ffff7f00", gatt.Temperature{Value: gatt.Number{Kind: gatt.NaN}}},
	} {
		got, err := gatt.DecodeTemperature(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDecodeGlucose(t *testing.T) {
	base := gatt.DateTime{Year: 2026, Month: 12, Day: 7, Hour: 7}
	for _, c := range []struct {
		name, hex string
		want      gatt.Glucose
	}{
		// seq 1, 07:00 + 5 min, 95 mg/dL (95e-5 kg/L), capillary whole blood (1) from a finger (1).
		{"kg/L with offset", "03 0100 ea070c07070000 0500 5fb0 11", gatt.Glucose{Seq: 1, Base: base, Offset: 5, HasOffset: true,
			Concentration: sfl(95, -5), Type: 1, Location: 1}},
		// seq 2, 5.3 mmol/L (53e-4 mol/L), interstitial fluid (9), location not available (15).
		{"mol/L", "06 0200 ea070c07070000 35c0 f9", gatt.Glucose{Seq: 2, Base: base, Concentration: sfl(53, -4), MolPerL: true, Type: 9, Location: 15}},
		// seq 4, result too high.
		{"status, context follows", "1a 0400 ea070c07070000 5fb0 11 2000", gatt.Glucose{Seq: 4, Base: base, Concentration: sfl(95, -5),
			Type: 1, Location: 1, Status: gatt.GlucoseResultTooHigh, HasStatus: true, ContextFollows: true}},
		{"negative offset", "01 0500 ea070c07070000 f6ff", gatt.Glucose{Seq: 5, Base: base, Offset: -10, HasOffset: true}},
	} {
		got, err := gatt.DecodeGlucose(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDecodeGlucoseContext(t *testing.T) {
	for _, c := range []struct {
		name, hex string
		want      gatt.GlucoseContext
	}{
		// seq 5, preprandial (1), HbA1c 6.5 %.
		{"meal and HbA1c", "42 0500 01 41f0", gatt.GlucoseContext{Seq: 5, Meal: 1, HbA1c: sfl(65, -1)}},
		// every field: extended 0, breakfast (1) 0.05 kg carbohydrate (5e-2), fasting (3), self (1) with
		// no health issues (5), 30 min exercise at 50 %, rapid acting insulin (1) 4e-6 L, HbA1c 5.9 %.
		{"every field", "ff 0600 00 01 05e0 03 51 0807 32 01 04a0 3bf0", gatt.GlucoseContext{Seq: 6, HasExtended: true,
			CarbID: 1, Carbs: sfl(5, -2), Meal: 3, Tester: 1, Health: 5, ExerciseSeconds: 1800, ExerciseIntensity: 50, HasExercise: true,
			MedicationID: 1, Medication: sfl(4, -6), MedicationLitres: true, HbA1c: sfl(59, -1)}},
	} {
		got, err := gatt.DecodeGlucoseContext(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDecodeWeight(t *testing.T) {
	for _, c := range []struct {
		name, hex string
		want      gatt.Weight
	}{
		// 70.2 kg (14040 × 0.005), 2026-12-07 09:30:00, user 1, BMI 22.9, height 1.752 m.
		{"SI, every field", "0e d836 ea070c07091e00 01 e500 d806", gatt.Weight{Raw: 14040, Time: dec7, UserID: 1, HasUser: true, BMI: 229, Height: 1752, HasBMI: true}},
		{"imperial", "01 783c", gatt.Weight{Imperial: true, Raw: 15480}},
		{"unsuccessful", "00 ffff", gatt.Weight{Raw: gatt.WeightUnsuccessful}},
	} {
		got, err := gatt.DecodeWeight(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDecodeBodyComposition(t *testing.T) {
	for _, c := range []struct {
		name, hex string
		want      gatt.BodyComposition
	}{
		// body fat 22.5 %, 2026-12-07 09:30:00, user 1, weight 70.2 kg.
		{"SI, time, user, weight", "0604 e100 ea070c07091e00 01 d836", gatt.BodyComposition{BodyFat: 225, Time: dec7, UserID: 1, HasUser: true,
			Weight: 14040, Present: gatt.BodyCompWeight}},
		// body fat 30.0 %, height 69.0 in.
		{"imperial, height", "0108 2c01 b202", gatt.BodyComposition{Imperial: true, BodyFat: 300, Height: 690, Present: gatt.BodyCompHeight}},
		{"every field", "f80f e100 0100 0200 0300 0400 0500 0600 0700 0800 0900", gatt.BodyComposition{BodyFat: 225,
			BasalKJ: 1, MusclePercent: 2, MuscleMass: 3, FatFreeMass: 4, SoftLeanMass: 5, BodyWaterMass: 6, Impedance: 7, Weight: 8, Height: 9,
			Present: 0x0FF8}},
		{"multiple packet", "0010 e100", gatt.BodyComposition{BodyFat: 225, MultiplePacket: true}},
	} {
		got, err := gatt.DecodeBodyComposition(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

func TestDecodePLX(t *testing.T) {
	for _, c := range []struct {
		name, hex  string
		continuous bool
		want       gatt.PLX
	}{
		{"spot-check", "00 6200 4600", false, gatt.PLX{SpO2: sfl(98, 0), PulseRate: sfl(70, 0)}},
		// 97 %, 64 /min, 2026-12-07 09:30:00, validated, sensor not on user, PAI 2.5 %.
		{"spot-check, every field", "0f 6100 4000 ea070c07091e00 8000 000800 19f0", false, gatt.PLX{SpO2: sfl(97, 0), PulseRate: sfl(64, 0),
			Time: dec7, MeasurementStatus: gatt.PLXValidated, HasMeasurement: true, DeviceStatus: gatt.PLXSensorNotOnUser, HasDeviceStatus: true,
			PulseAmplitudeIdx: sfl(25, -1)}},
		{"spot-check, clock not set", "11 6100 4000 ea070c07091e00", false, gatt.PLX{SpO2: sfl(97, 0), PulseRate: sfl(64, 0), Time: dec7, ClockNotSet: true}},
		// normal 96/80, fast 95/81, slow 96/79.
		{"continuous", "03 6000 5000 5f00 5100 6000 4f00", true, gatt.PLX{SpO2: sfl(96, 0), PulseRate: sfl(80, 0),
			Fast: [2]gatt.Number{sfl(95, 0), sfl(81, 0)}, Slow: [2]gatt.Number{sfl(96, 0), sfl(79, 0)}}},
		// poor signal (bit 4), measurement status questionable.
		{"continuous, status", "0c 6000 5000 0040 100000", true, gatt.PLX{SpO2: sfl(96, 0), PulseRate: sfl(80, 0),
			MeasurementStatus: gatt.PLXQuestionableMeasure, HasMeasurement: true, DeviceStatus: gatt.PLXPoorSignal, HasDeviceStatus: true}},
	} {
		decode := gatt.DecodePLXSpotCheck
		if c.continuous {
			decode = gatt.DecodePLXContinuous
		}
		got, err := decode(unhex(t, c.hex))
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}

// TestDecodeShort: a payload shorter than its flags promise is refused
// (EINVALID), at every length short of the promise; so are impossible dates
// and an odd byte among RR intervals.
func TestDecodeShort(t *testing.T) {
	full := map[string]func([]byte) error{
		"1e 7800 5000 5d00 ea070c07091e00 4800 01 0100": func(b []byte) error { _, err := gatt.DecodeBloodPressure(b); return err },
		"19 0100 0001":                                                             func(b []byte) error { _, err := gatt.DecodeHeartRate(b); return err },
		"07 da0300ff ea070c07091e00 06":                                            func(b []byte) error { _, err := gatt.DecodeTemperature(b); return err },
		"0b 0100 ea070c07070000 0500 5fb0 11 2000":                                 func(b []byte) error { _, err := gatt.DecodeGlucose(b); return err },
		"ff 0600 00 01 05e0 03 51 0807 32 01 04a0 3bf0":                            func(b []byte) error { _, err := gatt.DecodeGlucoseContext(b); return err },
		"0e d836 ea070c07091e00 01 e500 d806":                                      func(b []byte) error { _, err := gatt.DecodeWeight(b); return err },
		"0f 6100 4000 ea070c07091e00 8000 000800 19f0":                             func(b []byte) error { _, err := gatt.DecodePLXSpotCheck(b); return err },
		"1f 6000 5000 5f00 5100 6000 4f00 0040 100000 19f0":                        func(b []byte) error { _, err := gatt.DecodePLXContinuous(b); return err },
		"fe0f e100 ea070c07091e00 01 0100 0200 0300 0400 0500 0600 0700 0800 0900": func(b []byte) error { _, err := gatt.DecodeBodyComposition(b); return err },
	}
	for h, decode := range full {
		b := unhex(t, h)
		if err := decode(b); err != nil {
			t.Errorf("%s: whole payload refused: %v", h, err)
		}
		for n := 0; n < len(b); n++ {
			if err := decode(b[:n:n]); vigil.ErrorCode(err) != vigil.EINVALID {
				t.Errorf("%s cut to %d bytes: error %v, want invalid", h, n, err)
			}
		}
	}
	for _, c := range []struct {
		name, hex string
	}{
		{"month 13", "02 7800 5000 5d00 ea070d07091e00"},
		{"30 February", "02 7800 5000 5d00 ea07021e091e00"},
		{"hour 24", "02 7800 5000 5d00 ea070c07181e00"},
		{"year 1000", "02 7800 5000 5d00 e8030c07091e00"},
	} {
		if _, err := gatt.DecodeBloodPressure(unhex(t, c.hex)); vigil.ErrorCode(err) != vigil.EINVALID {
			t.Errorf("%s: error %v, want invalid", c.name, err)
		}
	}
	// An unknown date (year 0) is no error: the time is not known.
	if m, err := gatt.DecodeBloodPressure(unhex(t, "02 7800 5000 5d00 00000000000000")); err != nil || m.Time.Known() {
		t.Errorf("unknown date: %+v, %v", m.Time, err)
	}
	if _, err := gatt.DecodeHeartRate(unhex(t, "10 48 0004 00")); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("odd RR byte: error %v, want invalid", err)
	}
}
