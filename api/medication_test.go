package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// decodeStrict decodes b as DecodeJSON does: unknown fields refused.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// FuzzMedicationBodies: arbitrary bodies of an order and of a dose never
// panic, every refusal is EINVALID, and what is accepted keeps the rules
// (vigil.CheckMedicationOrder, vigil.CheckDose, no dose in the future).
func FuzzMedicationBodies(f *testing.F) {
	for _, s := range []string{
		`{"code":"860975","display":"metformin","dose_value":1,"dose_unit":"{tbl}","times":["08:00","20:00"],"time_zone":"Europe/Berlin"}`,
		`{"code":"x","display":"y","dose_value":1e308,"dose_unit":"[iU]","times":["23:59"],"time_zone":"UTC","start":"2026-01-01T00:00:00Z","end":"2025-01-01T00:00:00Z"}`,
		`{"time":"2026-11-20T09:00:00Z","value":2,"unit":"{tbl}"}`, `{"value":-0}`, `{"times":["8:00","24:00","aa:bb"]}`, `{}`, `[]`, `null`,
		`{"time_zone":"Local","times":["08:00"]}`, `{"time_zone":"../../etc/passwd"}`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		var oi orderIn
		if decodeStrict(b, &oi) == nil {
			o, err := oi.order("pat_1", "usr_doc", now)
			switch {
			case err != nil && vigil.ErrorCode(err) != vigil.EINVALID:
				t.Fatalf("order error %v is not EINVALID", err)
			case err == nil && vigil.CheckMedicationOrder(o) != nil:
				t.Fatalf("accepted order %+v fails the check", o)
			}
		}
		var di doseIn
		if decodeStrict(b, &di) == nil {
			o := &vigil.MedicationOrder{ID: "mor_1", SubjectID: "pat_1", DoseValue: 1, DoseUnit: "{tbl}", Start: now.AddDate(0, -1, 0)}
			d, err := di.dose(o, "usr_pat", now)
			switch {
			case err != nil && vigil.ErrorCode(err) != vigil.EINVALID:
				t.Fatalf("dose error %v is not EINVALID", err)
			case err == nil && (vigil.CheckDose(d) != nil || d.Time.After(now.Add(maxDoseAhead)) || d.OrderID != "mor_1"):
				t.Fatalf("accepted dose %+v breaks the rules", d)
			}
		}
	})
}
