package sqlite

import (
	"strings"
	"testing"
	"time"
)

// TestReadingQueriesUseCodeRanges checks that the queries over all of a
// subject's codes read the (subject_id, code, t) index range by range —
// the only index of readings by subject since migration 0036 — and never
// scan the table or sort the subject's readings in a temporary b-tree
// (DISTINCT's own b-tree over slots excepted).
func TestReadingQueriesUseCodeRanges(t *testing.T) {
	s := openInternal(t)
	now := time.Now().UnixMicro()
	for _, tc := range []struct {
		name string
		q    string
		args []any
		// temp is a temporary b-tree the plan may use.
		temp string
	}{
		{"subject codes", subjectCodes + "SELECT code FROM c WHERE code IS NOT NULL", []any{"pat_1"}, ""},
		{"measured slots", measuredSlotsQuery, []any{"pat_1", int64(60e6), now - 3600e6, now, notMeasured}, "DISTINCT"},
		{"first measured", firstMeasuredQuery, []any{"pat_1", notMeasured}, ""},
		{"erase", readingsToDelete(""), []any{"pat_1", nil, 1000}, ""},
		{"expire", readingsToDelete(expiredCond), []any{"pat_1", now, 1000}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := queryPlan(t, s, tc.q, tc.args...)
			t.Logf("plan:\n%s", plan)
			for _, line := range strings.Split(plan, "\n") {
				scan := strings.HasPrefix(line, "SCAN") && strings.Contains(line, "readings") && !strings.Contains(line, "USING")
				temp := strings.Contains(line, "TEMP B-TREE") && (tc.temp == "" || !strings.Contains(line, tc.temp))
				if scan || temp {
					t.Errorf("plan has %q:\n%s", line, plan)
				}
			}
			if !strings.Contains(plan, "readings_subject_code_t") {
				t.Errorf("plan does not use readings_subject_code_t:\n%s", plan)
			}
		})
	}
}
