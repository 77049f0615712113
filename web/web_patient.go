package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/gate"
	"github.com/vigil-health/vigil/rules"
)

// chartRanges are the patient page's chart windows.
var chartRanges = []struct {
	Value string
	Span  time.Duration
}{
	{"6h", 6 * time.Hour},
	{"24h", 24 * time.Hour},
	{"7d", 7 * 24 * time.Hour},
	{"30d", 30 * 24 * time.Hour},
}

// chartBuckets is how many buckets a chart has at most: the store
// summarises every window to this many (a 6 h window is 1 minute per
// bucket, 30 days 2 hours), so a chart costs the same whatever the data rate.
const chartBuckets = 360

// patientPage is the data of the patient page.
type patientPage struct {
	Patient   *vigil.Patient
	Range     string
	Ranges    []string
	From, To  time.Time
	Vitals    []vital
	Charts    []chart
	Alerts    []alertView
	Devices   []deviceView
	Glucose   *rules.Summary
	CanEnter  bool        // a clinician: may enter observations and act on alerts
	AccessLog []auditView // the patient's own view: who accessed the record
	Own       bool
	// DeviceEntries counts the device writes of the access log's window;
	// they are listed only when ShowDevices.
	DeviceEntries int
	ShowDevices   bool
	// Consents are the patient's consents (web_consent.go); in the own
	// view, Offer are the integrations not shared with and Research
	// whether research use is allowed.
	Consents []consentView
	Offer    []grantee
	Research bool
	// Time is the month's monitoring time (web_monitoring.go), for
	// clinicians; nil otherwise.
	Time *timeView
	// Medications are the patient's orders with their adherence
	// (web_medication.go).
	Medications []medicationView
	// Messages are the patient's threads (web_messages.go); nil for those
	// who may not read them.
	Messages *messagesView
	// Appointments are the patient's booked televisits (nil: not shown);
	// Joins is whether the viewer may join them (the patient; a clinician
	// joins their own).
	Appointments []*vigil.Appointment
	Viewer       string
}

type alertView struct {
	*vigil.Alert
	Events []eventView
	Values alertValue // of an unresolved alert
}

type eventView struct {
	vigil.AlertEvent
	Who string // the actor's name; "Vigil" for the system
}

type deviceView struct {
	*vigil.Device
	LastSeen  time.Time // newest reading from the device, or its last MQTT packet
	Battery   *float64
	Connected *bool
}

// auditView is one entry of the patient's access log, in plain words.
type auditView struct {
	Time              time.Time
	Who, Role, Action string
	Outcome           string
	Device            bool
}

// accessLogWindow is how far back the patient's own view lists who
// accessed the record (the newest accessLogShown entries).
const accessLogWindow = 30 * 24 * time.Hour

// patientView serves GET /patients/{id}?range=6h|24h|7d|30d. Authorization
// (the route's clinical patient rule) has let the caller see the patient.
func (s *Handler) patientView(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p := gate.Principal(ctx)
	rng := r.URL.Query().Get("range") // "": the smallest window showing the newest data
	pg, err := s.patientPageData(ctx, p, r.PathValue("id"), rng, r.URL.Query().Get("devices") != "", s.Time())
	if err != nil {
		return err
	}
	if pg.Messages, err = s.pageThreads(ctx, r, p, pg.Patient.ID); err != nil {
		return err
	}
	if pg.Appointments, err = s.pageAppointments(ctx, r, p, pg.Patient.ID); err != nil {
		return err
	}
	pg.Viewer = p.UserID
	nav := "worklist"
	if pg.Own {
		nav = "me"
	}
	return s.render(w, r, http.StatusOK, "patient", pageData{Title: pg.Patient.Name, Nav: nav, Body: pg})
}

// patientPageData gathers everything the patient page shows of patient id
// over the window rng ending at now, for principal p (who must have been
// authorized for the patient). The patient's own access log lists what
// devices wrote only when devices is set.
func (s *Handler) patientPageData(ctx context.Context, p *vigil.Principal, id, rng string, devices bool, now time.Time) (*patientPage, error) {
	pt, err := s.Store.Patient(ctx, id)
	if err != nil {
		return nil, err
	}
	latest, err := s.Store.Latest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("patient latest: %w", err)
	}
	if rng == "" {
		rng = defaultRange(latest, now)
	}
	idx := slices.IndexFunc(chartRanges, func(c struct {
		Value string
		Span  time.Duration
	}) bool {
		return c.Value == rng
	})
	if idx < 0 {
		return nil, vigil.Errorf(vigil.EINVALID, "range must be one of 6h, 24h, 7d, 30d")
	}
	span := chartRanges[idx].Span
	pg := &patientPage{Patient: pt, Range: rng, From: now.Add(-span), To: now,
		CanEnter: p.Role == vigil.RoleClinician, Own: p.Role == vigil.RolePatient}
	for _, c := range chartRanges {
		pg.Ranges = append(pg.Ranges, c.Value)
	}
	n := s.news2Config(id)
	pg.Vitals = latestVitals(&n, latest)
	units := make(map[string]string, len(latest))
	for _, r := range latest {
		units[r.Code] = r.Unit
	}

	width := span / chartBuckets
	for _, d := range vitalDefs {
		var c *chart
		for _, code := range d.Codes {
			if c, err = s.chartOf(ctx, id, d, code, pg.From, now, width); err != nil {
				return nil, err
			}
			if c != nil {
				c.UCUM = units[code]
				break
			}
		}
		if c == nil {
			continue
		}
		if d.Pair != "" {
			if c.Second, err = s.chartOf(ctx, id, d, d.Pair, pg.From, now, width); err != nil {
				return nil, err
			}
		}
		c.layout(&n)
		pg.Charts = append(pg.Charts, *c)
	}

	if err := s.markInsulin(ctx, id, pg.Charts); err != nil {
		return nil, err
	}
	if pg.Alerts, err = s.alertTimeline(ctx, id); err != nil {
		return nil, err
	}
	if pg.CanEnter {
		if pg.Time, err = s.timeViewOf(ctx, p, id, now); err != nil {
			return nil, err
		}
	}
	if pg.Devices, err = s.deviceViews(ctx, id, latest); err != nil {
		return nil, err
	}

	// Glucose summary over the window (at least 24 h) when CGM data exist.
	gFrom := now.Add(-max(span, 24*time.Hour))
	cgm, err := s.AllReadings(ctx, vigil.ReadingQuery{SubjectID: id, Codes: []string{rules.CodeGlucoseCGM}, From: gFrom, To: now})
	if err != nil {
		return nil, fmt.Errorf("patient glucose: %w", err)
	}
	if len(cgm) > 0 {
		sum := rules.GlucoseSummary(cgm, gFrom, now)
		pg.Glucose = &sum
	}

	if pg.Consents, pg.Offer, pg.Research, err = s.consentsOf(ctx, id, pg.Own); err != nil {
		return nil, err
	}
	if pg.Medications, err = s.medicationsOf(ctx, id, now); err != nil {
		return nil, err
	}
	if pg.Own {
		es, err := s.AuditLog.AuditEntries(ctx, vigil.AuditFilter{SubjectID: id, From: now.Add(-accessLogWindow)})
		if err != nil {
			return nil, fmt.Errorf("patient access log: %w", err)
		}
		names := map[string]string{}
		for i := len(es) - 1; i >= 0; i-- { // newest first, at most 100; every device write counted
			e := es[i]
			if e.Action == vigil.AuditConsentChange && e.Outcome == vigil.AuditSuccess && e.Detail == "" {
				continue // the request's own entry; the one with the detail says what changed
			}
			if e.Role == vigil.RoleDevice {
				pg.DeviceEntries++
				if !devices {
					continue
				}
			}
			if len(pg.AccessLog) < 100 {
				pg.AccessLog = append(pg.AccessLog, s.accessEntry(ctx, e, p.UserID, names))
			}
		}
		pg.ShowDevices = devices
	}
	return pg, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// alertTimeline returns the patient's newest alerts with their history,
// naming the people who acted.
func (s *Handler) alertTimeline(ctx context.Context, id string) ([]alertView, error) {
	if s.AlertStore == nil {
		return nil, nil
	}
	as, err := s.AlertStore.Alerts(ctx, vigil.AlertFilter{SubjectIDs: []string{id}, Limit: 20})
	if err != nil {
		return nil, fmt.Errorf("patient alerts: %w", err)
	}
	names := map[string]string{"": "Vigil"}
	name := func(uid string) string {
		if n, ok := names[uid]; ok {
			return n
		}
		n := uid
		if u, err := s.Store.User(ctx, uid); err == nil {
			n = u.ShownName()
		}
		names[uid] = n
		return n
	}
	out := make([]alertView, 0, len(as))
	for _, a := range as {
		evs, err := s.AlertStore.AlertEvents(ctx, a.ID)
		if err != nil {
			return nil, fmt.Errorf("alert history: %w", err)
		}
		av := alertView{Alert: a}
		if a.State != vigil.AlertResolved {
			if av.Values, err = s.alertValueOf(ctx, a, s.Time()); err != nil {
				return nil, err
			}
		}
		for _, e := range evs {
			av.Events = append(av.Events, eventView{AlertEvent: e, Who: name(e.Actor)})
		}
		out = append(out, av)
	}
	return out, nil
}

// deviceViews lists the patient's devices with when each was last heard
// from (its newest reading among latest, or its last MQTT packet) and its
// battery, when the device reports one.
func (s *Handler) deviceViews(ctx context.Context, id string, latest []vigil.Reading) ([]deviceView, error) {
	ds, err := s.Store.Devices(ctx, vigil.DeviceFilter{SubjectID: id})
	if err != nil {
		return nil, fmt.Errorf("patient devices: %w", err)
	}
	out := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		v := deviceView{Device: d}
		for _, r := range latest {
			if r.DeviceID == d.ID && r.Time.After(v.LastSeen) {
				v.LastSeen = r.Time
			}
		}
		if s.DeviceStatus != nil {
			if st, ok := s.DeviceStatus(d.ID); ok {
				var ds struct {
					Connected bool      `json:"connected"`
					LastSeen  time.Time `json:"last_seen"`
					Battery   *float64  `json:"battery"`
				}
				if b, err := json.Marshal(st); err == nil && json.Unmarshal(b, &ds) == nil {
					v.Battery, v.Connected = ds.Battery, &ds.Connected
					if ds.LastSeen.After(v.LastSeen) {
						v.LastSeen = ds.LastSeen
					}
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}
