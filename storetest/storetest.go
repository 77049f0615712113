// Package storetest is the behavioural test suite every implementation of
// Vigil's stores must pass: Run for the main vigil.Store, RunAlerts for
// vigil.AlertWebhookStore, RunAudit for vigil.AuditStore. It tests through
// those interfaces only, so one suite holds every implementation (sqlite,
// postgres) to the same contract:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) vigil.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// and likewise RunAlerts with sqlite.OpenAlerts and RunAudit with
// sqlite.OpenAudit. RunExportFiles holds the FHIR bulk export stores
// (exportdir.Dir, postgres.ExportFiles) to vigil.ExportFiles.
//
// Where the root contract is silent the suite fixes the behaviour, so that
// implementations agree: see the subtests.
package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
)

// Run runs the suite. open must return a new, empty Store for each call and
// arrange for it to be closed when its t ends (t.Cleanup); the suite never
// closes it.
func Run(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("RuleConfigs", func(t *testing.T) { testRuleConfigs(t, open) })
	t.Run("Patients", func(t *testing.T) { testPatients(t, open) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, open) })
	t.Run("DeviceStatuses", func(t *testing.T) { testDeviceStatuses(t, open) })
	t.Run("Peripherals", func(t *testing.T) { testPeripherals(t, open) })
	t.Run("Users", func(t *testing.T) { testUsers(t, open) })
	t.Run("Tokens", func(t *testing.T) { testTokens(t, open) })
	t.Run("UpdateUser", func(t *testing.T) { testUpdateUser(t, open) })
	t.Run("RevokedStaysRevoked", func(t *testing.T) { testRevokedStaysRevoked(t, open) })
	t.Run("TokenLookup", func(t *testing.T) { testTokenLookup(t, open) })
	t.Run("SecondFactor", func(t *testing.T) { testSecondFactor(t, open) })
	t.Run("ExternalIdentities", func(t *testing.T) { testExternalIdentities(t, open) })
	t.Run("Teams", func(t *testing.T) { testTeams(t, open) })
	t.Run("BreakGlass", func(t *testing.T) { testBreakGlass(t, open) })
	t.Run("WriteBatches", func(t *testing.T) { testWriteBatches(t, open) })
	t.Run("Quarantined", func(t *testing.T) { testQuarantined(t, open) })
	t.Run("Readings", func(t *testing.T) { testReadings(t, open) })
	t.Run("Latest", func(t *testing.T) { testLatest(t, open) })
	t.Run("Reading", func(t *testing.T) { testReading(t, open) })
	t.Run("ReceivedRange", func(t *testing.T) { testReceivedRange(t, open) })
	t.Run("Buckets", func(t *testing.T) { testBuckets(t, open) })
	t.Run("HL7Senders", func(t *testing.T) { testHL7Senders(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, open) })
	t.Run("Identity", func(t *testing.T) { testIdentity(t, open) })
	t.Run("Erasure", func(t *testing.T) { testErasure(t, open) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
}

// RunPatients runs the suite's tests of vigil.PatientStore alone: for a
// PatientStore layered over a Store, such as keys.Store, which seals
// identity through the store's IdentityStore.
func RunPatients(t *testing.T, open func(t *testing.T) vigil.Store) {
	t.Run("Patients", func(t *testing.T) { testPatients(t, open) })
}

// RunAlerts runs the suite of the alerts database (alerts, the engine's
// checkpoint, webhooks and their outbox). open is as in Run.
func RunAlerts(t *testing.T, open func(t *testing.T) vigil.AlertWebhookStore) {
	t.Run("Alerts", func(t *testing.T) { testAlerts(t, open) })
	t.Run("AlertEraser", func(t *testing.T) { testAlertEraser(t, open) })
}

// RunAudit runs the suite of the audit database. open is as in Run.
func RunAudit(t *testing.T, open func(t *testing.T) vigil.AuditStore) {
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
}

// Codes and units the suite uses.
const (
	heartRate  = "8867-4"  // /min
	spo2       = "59408-5" // %
	respRate   = "9279-1"  // /min
	bodyTemp   = "8310-5"  // Cel
	bpPanel    = "85354-9" // panel, Unit ""
	systolic   = "8480-6"  // mm[Hg]
	diastolic  = "8462-4"  // mm[Hg]
	mmHg       = "mm[Hg]"
	subjectA   = "pat_a"
	subjectB   = "pat_b"
	deviceOfA  = "dev_a"
	sourceHTTP = "http"
	sourceMQTT = "mqtt"
	sourceHL7  = "hl7"
	tolerance  = 1e-9
)

// unitOf returns the canonical unit of the codes the suite uses.
func unitOf(code string) string {
	switch code {
	case heartRate, respRate:
		return "/min"
	case spo2:
		return "%"
	case bodyTemp:
		return "Cel"
	case systolic, diastolic:
		return mmHg
	}
	return ""
}

// at returns the suite's reference time plus d. The reference time,
// 2025-03-14 09:00 UTC, is a multiple of a minute (and of an hour) since the
// epoch, but not of seven minutes.
func at(d time.Duration) time.Time {
	return time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC).Add(d)
}

// gen makes readings with keys unique within a test.
type gen struct{ n int }

// key returns a new idempotency key.
func (g *gen) key() string {
	g.n++
	return fmt.Sprintf("test-%d", g.n)
}

// reading returns a stand-alone reading of subject.
func (g *gen) reading(subject, code string, v float64, t time.Time) vigil.Reading {
	return vigil.Reading{
		SubjectID: subject,
		DeviceID:  deviceOfA,
		Code:      code,
		Value:     v,
		Unit:      unitOf(code),
		Time:      t,
		Received:  t.Add(2 * time.Second),
		Key:       g.key(),
		Source:    sourceHTTP,
	}
}

// bp returns a blood pressure panel of subject.
func (g *gen) bp(subject string, sys, dia float64, t time.Time) vigil.Reading {
	r := g.reading(subject, bpPanel, 0, t)
	r.Components = []vigil.Component{
		{Code: systolic, Value: sys, Unit: mmHg},
		{Code: diastolic, Value: dia, Unit: mmHg},
	}
	return r
}

// write stores rs in one batch, failing the test unless all are stored, and
// returns them with their IDs.
func write(t *testing.T, s vigil.Store, rs ...vigil.Reading) []vigil.Reading {
	t.Helper()
	n, err := s.WriteBatches(t.Context(), []vigil.Batch{{Readings: rs}})
	if err != nil {
		t.Fatalf("WriteBatches: %v", err)
	}
	if n != len(rs) {
		t.Fatalf("WriteBatches stored %d, want %d", n, len(rs))
	}
	return rs
}

// wantCode fails the test unless err carries the error code want.
func wantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := vigil.ErrorCode(err); got != want {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, want)
	}
}

// formatTime shows t with its location, so that a time returned in another
// location than UTC differs.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339Nano) + "[" + t.Location().String() + "]"
}

// formatReading shows every field of r.
func formatReading(r vigil.Reading) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{id=%d subject=%s device=%s code=%s value=%v unit=%q time=%s received=%s key=%s quality=%d source=%s performer=%q",
		r.ID, r.SubjectID, r.DeviceID, r.Code, r.Value, r.Unit, formatTime(r.Time), formatTime(r.Received),
		r.Key, r.Quality, r.Source, r.Performer)
	if r.Components != nil {
		fmt.Fprintf(&b, " components=%v", r.Components)
	}
	if r.Derivation != nil {
		fmt.Fprintf(&b, " derivation=%+v", *r.Derivation)
	}
	b.WriteString("}")
	return b.String()
}

// diffReadings returns "" if got and want hold the same readings in the same
// order, and a description of the first difference otherwise.
func diffReadings(got, want []vigil.Reading) string {
	g := make([]string, len(got))
	for i, r := range got {
		g[i] = formatReading(r)
	}
	w := make([]string, len(want))
	for i, r := range want {
		w[i] = formatReading(r)
	}
	if slices.Equal(g, w) {
		return ""
	}
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("reading %d:\n got %s\nwant %s", i, g[i], w[i])
		}
	}
	return fmt.Sprintf("got %d readings, want %d:\n got %s\nwant %s", len(g), len(w), strings.Join(g, "\n     "), strings.Join(w, "\n     "))
}

// keys returns the keys of rs in order.
func keys(rs []vigil.Reading) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Key
	}
	return out
}

// sortByTime sorts rs by (Time, ID), descending if desc.
func sortByTime(rs []vigil.Reading, desc bool) {
	slices.SortFunc(rs, func(a, b vigil.Reading) int {
		c := a.Time.Compare(b.Time)
		if c == 0 {
			c = cmpInt(a.ID, b.ID)
		}
		if desc {
			c = -c
		}
		return c
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// near reports whether a and b are equal but for rounding.
func near(a, b float64) bool {
	return math.Abs(a-b) <= tolerance*math.Max(1, math.Abs(b))
}
