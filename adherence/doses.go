package adherence

import (
	"context"
	"sort"
	"time"

	"github.com/vigil-health/vigil"
)

// Doses returns the doses of order o taken in [from, to), oldest first:
// those the patient confirmed (meds) and the dose readings of the order's
// device (readings; vigil.DoseFromReading). It is the one function of the
// package that reads a store; what it returns is what Compute and Missed
// take.
func Doses(ctx context.Context, meds vigil.MedicationStore, readings vigil.ReadingStore, o *vigil.MedicationOrder, from, to time.Time) ([]vigil.Dose, error) {
	ds, err := meds.Doses(ctx, vigil.DoseQuery{SubjectID: o.SubjectID, OrderID: o.ID, From: from, To: to})
	if err != nil {
		return nil, err
	}
	if o.DeviceID != "" && readings != nil {
		q := vigil.ReadingQuery{SubjectID: o.SubjectID, Codes: []string{vigil.CodeMedicationDose, vigil.CodeInsulinBolus},
			From: from, To: to, Limit: vigil.MaxReadingLimit}
		for {
			page, err := readings.Readings(ctx, q)
			if err != nil {
				return nil, err
			}
			for _, r := range page.Readings {
				if d, ok := vigil.DoseFromReading(o, r); ok {
					ds = append(ds, d)
				}
			}
			if page.Next == nil {
				break
			}
			q.After = page.Next
		}
	}
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Time.Before(ds[j].Time) })
	return ds, nil
}

// Times returns the times of ds.
func Times(ds []vigil.Dose) []time.Time {
	out := make([]time.Time, len(ds))
	for i, d := range ds {
		out[i] = d.Time
	}
	return out
}
