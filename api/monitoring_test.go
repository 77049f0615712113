package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

func TestTimeEntryOf(t *testing.T) {
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, tc := range []struct {
		name string
		in   timeEntryInput
		ok   bool
	}{
		{"manual", timeEntryInput{Kind: vigil.TimeInteractive, Minutes: 15, Start: at(-time.Hour)}, true},
		{"timer", timeEntryInput{Kind: vigil.TimeReview, Timer: true}, true},
		{"timer with minutes", timeEntryInput{Kind: vigil.TimeReview, Timer: true, Minutes: 5}, false},
		{"timer with a start", timeEntryInput{Kind: vigil.TimeReview, Timer: true, Start: at(-time.Hour)}, false},
		{"manual without a start", timeEntryInput{Kind: vigil.TimeReview, Minutes: 5}, false},
		{"manual without minutes", timeEntryInput{Kind: vigil.TimeReview, Start: at(-time.Hour)}, false},
		{"manual in the future", timeEntryInput{Kind: vigil.TimeReview, Minutes: 5, Start: at(time.Hour)}, false},
		{"manual long ago", timeEntryInput{Kind: vigil.TimeReview, Minutes: 5, Start: at(-500 * 24 * time.Hour)}, false},
		{"too many minutes", timeEntryInput{Kind: vigil.TimeReview, Minutes: 121, Start: at(-time.Hour)}, false},
		{"asynchronous kind", timeEntryInput{Kind: "message", Minutes: 5, Start: at(-time.Hour)}, false},
		{"no kind", timeEntryInput{Minutes: 5, Start: at(-time.Hour)}, false},
	} {
		e, err := timeEntryOf(tc.in, "pat_1", "usr_1", now)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Errorf("%s: %v is not EINVALID", tc.name, err)
			}
			continue
		}
		if e.SubjectID != "pat_1" || e.UserID != "usr_1" || e.Running != tc.in.Timer || (tc.in.Timer && !e.Start.Equal(now)) {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
}

// FuzzTimeEntryBody: any body never panics; a body that decodes is either
// refused as EINVALID or gives an entry vigil.CheckTimeEntry accepts, of
// the path's patient and the caller, not in the future.
func FuzzTimeEntryBody(f *testing.F) {
	for _, s := range []string{`{"kind":"interactive","minutes":20,"start":"2026-03-20T10:00:00Z"}`, `{"kind":"review","timer":true}`,
		`{"kind":"review","timer":true,"minutes":3}`, `{"minutes":-1}`, `{"start":"9999-12-31T23:59:59Z","kind":"review","minutes":1}`, `null`} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 3, 20, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		var in timeEntryInput
		if json.Unmarshal(body, &in) != nil {
			return
		}
		e, err := timeEntryOf(in, "pat_1", "usr_1", now)
		if err != nil {
			if vigil.ErrorCode(err) != vigil.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if err := vigil.CheckTimeEntry(e); err != nil || e.SubjectID != "pat_1" || e.UserID != "usr_1" || e.Start.After(now.Add(time.Minute)) {
			t.Fatalf("accepted %+v (%v)", e, err)
		}
	})
}
