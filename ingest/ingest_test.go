package ingest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/catalog"
)

// memLog is a vigil.Log that keeps batches in memory; fail makes Append fail.
type memLog struct {
	mu      sync.Mutex
	batches []vigil.Batch
	fail    error
}

func (l *memLog) Append(ctx context.Context, b *vigil.Batch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.batches = append(l.batches, *b)
	return nil
}

// memDirectory is a minimal device and patient directory for logic tests.
type memDirectory struct {
	devices  map[string]*vigil.Device
	patients map[string]*vigil.Patient
}

func (m *memDirectory) Device(ctx context.Context, id string) (*vigil.Device, error) {
	if d, ok := m.devices[id]; ok {
		return d, nil
	}
	return nil, vigil.Errorf(vigil.ENOTFOUND, "device not found")
}
func (m *memDirectory) Patient(ctx context.Context, id string) (*vigil.Patient, error) {
	if p, ok := m.patients[id]; ok {
		return p, nil
	}
	return nil, vigil.Errorf(vigil.ENOTFOUND, "patient not found")
}
func (m *memDirectory) CreateDevice(context.Context, *vigil.Device) error { panic("unused") }
func (m *memDirectory) DeviceByTokenHash(context.Context, []byte) (*vigil.Device, error) {
	panic("unused")
}
func (m *memDirectory) Devices(context.Context, vigil.DeviceFilter) ([]*vigil.Device, error) {
	panic("unused")
}
func (m *memDirectory) UpdateDevice(context.Context, string, vigil.DeviceUpdate) (*vigil.Device, error) {
	panic("unused")
}
func (m *memDirectory) CreatePatient(context.Context, *vigil.Patient) error { panic("unused") }
func (m *memDirectory) Patients(context.Context, vigil.PatientFilter) ([]*vigil.Patient, error) {
	panic("unused")
}

var now = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func newService(t testing.TB) (*Service, *memLog) {
	t.Helper()
	revoked := now.Add(-time.Hour)
	dir := &memDirectory{
		devices: map[string]*vigil.Device{
			"dev_a":       {ID: "dev_a", SubjectID: "pat_1"},
			"dev_b":       {ID: "dev_b", SubjectID: "pat_2"},
			"dev_free":    {ID: "dev_free"},
			"dev_revoked": {ID: "dev_revoked", SubjectID: "pat_1", Revoked: &revoked},
		},
		patients: map[string]*vigil.Patient{"pat_1": {ID: "pat_1"}, "pat_2": {ID: "pat_2"}},
	}
	log := &memLog{}
	return &Service{Log: log, Devices: dir, Patients: dir, Catalog: catalog.Default(), Now: func() time.Time { return now }}, log
}

var (
	deviceA     = &vigil.Principal{Role: vigil.RoleDevice, DeviceID: "dev_a", SubjectID: "pat_1", Name: "dev_a"}
	integration = &vigil.Principal{Role: vigil.RoleIntegration, UserID: "usr_i", Name: "svc-lab"}
	clinician   = &vigil.Principal{Role: vigil.RoleClinician, UserID: "usr_c", Name: "dr"}
	patientUser = &vigil.Principal{Role: vigil.RolePatient, UserID: "usr_p", SubjectID: "pat_1", Name: "pat"}
)

// TestSubmitItems checks each kind of item on its own: accepted and stored
// canonical, or refused with a reason that says why and kept in quarantine.
func TestSubmitItems(t *testing.T) {
	tests := []struct {
		name   string
		p      *vigil.Principal
		item   string
		reason string // "" = accepted
		check  func(t *testing.T, r vigil.Reading)
	}{
		{"heart rate", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17}`, "", func(t *testing.T, r vigil.Reading) {
			if r.SubjectID != "pat_1" || r.DeviceID != "dev_a" || r.Value != 72 || r.Unit != "/min" || !strings.HasPrefix(r.Key, "d:dev_a:17:") || r.Source != "http" || !r.Received.Equal(now) {
				t.Errorf("got %+v", r)
			}
		}},
		{"bpm alias converted flag", deviceA, `{"code":"8867-4","value":72,"unit":"bpm","time":"2026-11-20T09:59:00Z"}`, "", func(t *testing.T, r vigil.Reading) {
			if r.Unit != "/min" || !strings.HasPrefix(r.Key, "h:") {
				t.Errorf("got unit %q key %q", r.Unit, r.Key)
			}
		}},
		{"fahrenheit converted", deviceA, `{"code":"8310-5","value":98.6,"unit":"[degF]","time":"2026-11-20T09:59:00Z","seq":1}`, "", func(t *testing.T, r vigil.Reading) {
			if r.Unit != "Cel" || r.Value < 36.999 || r.Value > 37.001 || r.Quality&vigil.QualityConverted == 0 {
				t.Errorf("got %v %s quality %v", r.Value, r.Unit, r.Quality)
			}
		}},
		{"blood pressure panel", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","seq":2,"components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":10.6,"unit":"kPa"}]}`, "", func(t *testing.T, r vigil.Reading) {
			if r.HasValue() || len(r.Components) != 2 || r.Components[1].Unit != "mm[Hg]" || r.Components[1].Value < 79.4 || r.Components[1].Value > 79.6 {
				t.Errorf("got %+v", r)
			}
		}},
		{"flags", deviceA, `{"code":"2708-6","value":88,"unit":"%","time":"2026-11-20T09:59:00Z","flags":["artifact","questionable"]}`, "", func(t *testing.T, r vigil.Reading) {
			if r.Quality != vigil.QualityArtifact|vigil.QualityQuestionable {
				t.Errorf("quality %v", r.Quality)
			}
		}},
		{"time with offset becomes UTC", deviceA, `{"code":"8867-4","value":60,"unit":"/min","time":"2026-11-20T10:59:00.1234567+01:00"}`, "", func(t *testing.T, r vigil.Reading) {
			want := time.Date(2026, 11, 20, 9, 59, 0, 123456000, time.UTC)
			if !r.Time.Equal(want) || r.Time.Location() != time.UTC {
				t.Errorf("time %v, want %v", r.Time, want)
			}
		}},
		{"integration names device", integration, `{"code":"8867-4","value":60,"unit":"/min","time":"2026-11-20T09:59:00Z","device_id":"dev_b","seq":5}`, "", func(t *testing.T, r vigil.Reading) {
			if r.SubjectID != "pat_2" || !strings.HasPrefix(r.Key, "u:usr_i:5:") {
				t.Errorf("got %+v", r)
			}
		}},
		{"integration names patient", integration, `{"code":"29463-7","value":80,"unit":"kg","time":"2026-11-20T09:59:00Z","patient_id":"pat_1","seq":5}`, "", func(t *testing.T, r vigil.Reading) {
			if r.SubjectID != "pat_1" || r.DeviceID != "" || !strings.HasPrefix(r.Key, "u:usr_i:5:") {
				t.Errorf("got %+v", r)
			}
		}},

		{"unknown code", deviceA, `{"code":"1234-5","value":1,"unit":"/min","time":"2026-11-20T09:59:00Z"}`, `unknown code "1234-5"`, nil},
		{"wrong unit", deviceA, `{"code":"8867-4","value":72,"unit":"kg","time":"2026-11-20T09:59:00Z"}`, `unit "kg" is not accepted for 8867-4`, nil},
		{"unknown unit", deviceA, `{"code":"8867-4","value":72,"unit":"furlongs","time":"2026-11-20T09:59:00Z"}`, `unit "furlongs"`, nil},
		{"implausible value", deviceA, `{"code":"8867-4","value":900,"unit":"/min","time":"2026-11-20T09:59:00Z"}`, "implausible", nil},
		{"missing value", deviceA, `{"code":"8867-4","unit":"/min","time":"2026-11-20T09:59:00Z"}`, `"value" is required`, nil},
		{"missing time", deviceA, `{"code":"8867-4","value":72,"unit":"/min"}`, `"time" is required`, nil},
		{"time without zone", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00"}`, "not RFC 3339", nil},
		{"far-future time", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-23T14:00:00Z"}`, "is 3 days 4 hours in the future: ahead of the server clock by more than the 5 minutes accepted", nil},
		{"ancient time", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"1999-01-01T00:00:00Z"}`, "older than", nil},
		{"wrong type", deviceA, `{"code":"8867-4","value":"72","unit":"/min","time":"2026-11-20T09:59:00Z"}`, `field "value" must be a number`, nil},
		{"unknown field", deviceA, `{"code":"8867-4","valeu":72,"unit":"/min","time":"2026-11-20T09:59:00Z"}`, `unknown field "valeu"`, nil},
		{"not an object", deviceA, `42`, "malformed reading", nil},
		{"unknown flag", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","flags":["derived"]}`, `unknown flag "derived"`, nil},
		{"panel without components", deviceA, `{"code":"85353-1","time":"2026-11-20T09:59:00Z"}`, "is a panel: send its components", nil},
		{"panel with value", deviceA, `{"code":"85354-9","value":120,"time":"2026-11-20T09:59:00Z"}`, "no value of its own", nil},
		{"panel missing diastolic", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"}]}`, "needs component 8462-4", nil},
		{"panel foreign component", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8867-4","value":60,"unit":"/min"}]}`, `component "8867-4" does not belong`, nil},
		{"panel implausible component", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":900,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}`, "component 8480-6: value 900", nil},
		{"systolic below diastolic", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":80,"unit":"mm[Hg]"},{"code":"8462-4","value":120,"unit":"mm[Hg]"}]}`, "cannot be true: 8462-4 (Diastolic blood pressure) 120 mm[Hg] must be below 8480-6 (Systolic blood pressure) 80 mm[Hg]", nil},
		{"systolic equal to diastolic in kPa", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":12,"unit":"kPa"},{"code":"8462-4","value":12,"unit":"kPa"}]}`, "cannot be true", nil},
		{"mean above systolic", deviceA, `{"code":"85354-9","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"},{"code":"8478-0","value":125,"unit":"mm[Hg]"}]}`, "8478-0 (Mean blood pressure) 125 mm[Hg] must be at most 8480-6", nil},
		{"components on a plain code", deviceA, `{"code":"8867-4","value":1,"unit":"/min","time":"2026-11-20T09:59:00Z","components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"}]}`, "not a panel", nil},
		{"device for other patient", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","patient_id":"pat_2"}`, "not assigned to patient pat_2", nil},
		{"device posing as another", deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","device_id":"dev_b"}`, "may not send readings as device dev_b", nil},
		{"integration without subject", integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z"}`, `must name "device_id" or "patient_id"`, nil},
		{"integration unknown device", integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","device_id":"dev_x"}`, `unknown device "dev_x"`, nil},
		{"integration unassigned device", integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","device_id":"dev_free"}`, "not assigned to a patient", nil},
		{"integration revoked device", integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","device_id":"dev_revoked"}`, "dev_revoked is revoked", nil},
		{"integration device and other patient", integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","device_id":"dev_b","patient_id":"pat_1"}`, "not assigned to patient pat_1", nil},
		{"clinician enters consciousness", clinician, `{"code":"67775-7","value":2,"unit":"{score}","time":"2026-11-20T09:59:00Z","patient_id":"pat_1"}`, "", func(t *testing.T, r vigil.Reading) {
			if r.SubjectID != "pat_1" || r.DeviceID != "" || r.Quality&vigil.QualityManual == 0 || !strings.HasPrefix(r.Key, "h:") ||
				r.Performer != clinician.UserID {
				t.Errorf("got %+v", r)
			}
		}},
		{"clinician enters a fractional ACVPU", clinician, `{"code":"67775-7","value":2.5,"unit":"{score}","time":"2026-11-20T09:59:00Z","patient_id":"pat_1"}`, "value 2.5 is not a whole number: 67775-7", nil},
		{"integration sends a fractional NEWS2", integration, `{"code":"1104051000000101","value":4.2,"unit":"{score}","time":"2026-11-20T09:59:00Z","patient_id":"pat_1"}`, "not a whole number", nil},
		{"fractional steps", deviceA, `{"code":"55423-8","value":100.5,"unit":"{steps}","time":"2026-11-20T09:59:00Z"}`, "not a whole number", nil},
		{"clinician without patient", clinician, `{"code":"3151-8","value":2,"unit":"L/min","time":"2026-11-20T09:59:00Z"}`, `must name "patient_id"`, nil},
		{"clinician naming a device", clinician, `{"code":"3151-8","value":2,"unit":"L/min","time":"2026-11-20T09:59:00Z","patient_id":"pat_1","device_id":"dev_a"}`, "has no device_id", nil},
		{"clinician unknown patient", clinician, `{"code":"3151-8","value":2,"unit":"L/min","time":"2026-11-20T09:59:00Z","patient_id":"pat_x"}`, `unknown patient "pat_x"`, nil},
		{"patients may not send", patientUser, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","patient_id":"pat_1"}`, "role patient may not send readings", nil},
		{"integration unknown patient", integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","patient_id":"pat_x"}`, `unknown patient "pat_x"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, log := newService(t)
			body := `{"readings":[` + tt.item + `]}`
			res, err := s.Submit(context.Background(), tt.p, "http", []byte(body))
			if res == nil {
				t.Fatalf("Submit: nil result, err %v", err)
			}
			if len(log.batches) != 1 {
				t.Fatalf("log got %d batches, want 1", len(log.batches))
			}
			b := log.batches[0]
			if tt.reason == "" {
				if err != nil || res.Accepted != 1 || len(res.Rejected) != 0 || len(b.Readings) != 1 || len(b.Quarantine) != 0 {
					t.Fatalf("want accepted; got res %+v err %v batch %+v", res, err, b)
				}
				tt.check(t, b.Readings[0])
				return
			}
			if err == nil || res.Accepted != 0 || len(res.Rejected) != 1 {
				t.Fatalf("want rejected; got res %+v err %v", res, err)
			}
			rej := res.Rejected[0]
			if rej.Index != 0 || !strings.Contains(rej.Reason, tt.reason) {
				t.Errorf("rejection %+v, want index 0 and reason containing %q", rej, tt.reason)
			}
			if len(b.Readings) != 0 || len(b.Quarantine) != 1 {
				t.Fatalf("batch %+v, want one quarantine item", b)
			}
			q := b.Quarantine[0]
			if string(q.Payload) != tt.item || q.Reason != rej.Reason || q.Index != 0 || q.Source != "http" || q.Sender == "" || q.ID == "" {
				t.Errorf("quarantine item %+v, want the item kept whole with its reason", q)
			}
		})
	}
}

// TestSubmitMixedBatch checks that valid readings are accepted beside
// invalid ones and that indexes name the refused items.
func TestSubmitMixedBatch(t *testing.T) {
	s, log := newService(t)
	body := `{"readings":[
		{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":1},
		{"code":"8867-4","value":900,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":2},
		{"code":"2708-6","value":97,"unit":"%","time":"2026-11-20T09:59:00Z","seq":3},
		{"code":"nope","value":1,"unit":"%","time":"2026-11-20T09:59:00Z","seq":4}]}`
	res, err := s.Submit(context.Background(), deviceA, "http", []byte(body))
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if res.Accepted != 2 || len(res.Rejected) != 2 || res.Rejected[0].Index != 1 || res.Rejected[1].Index != 3 {
		t.Fatalf("result %+v", res)
	}
	if len(log.batches) != 1 || len(log.batches[0].Readings) != 2 || len(log.batches[0].Quarantine) != 2 {
		t.Fatalf("want one log write with 2 readings and 2 quarantined; got %+v", log.batches)
	}
}

// TestSubmitWholeBody checks submissions that cannot be taken apart.
func TestSubmitWholeBody(t *testing.T) {
	tests := []struct {
		name, body, reason string
	}{
		{"malformed JSON", `{"readings":[{"code":`, "malformed JSON"},
		{"empty body", ``, "malformed JSON: empty body"},
		{"not an object", `[1,2]`, "malformed JSON"},
		{"missing readings", `{}`, `missing "readings"`},
		{"empty readings", `{"readings":[]}`, `"readings" is empty`},
		{"unknown top-level field", `{"readings":[],"x":1}`, `unknown field "x"`},
		{"trailing data", `{"readings":[{}]} {}`, "unexpected data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, log := newService(t)
			res, err := s.Submit(context.Background(), deviceA, "http", []byte(tt.body))
			if vigil.ErrorCode(err) != vigil.EINVALID || res == nil || len(res.Rejected) != 1 || res.Rejected[0].Index != -1 {
				t.Fatalf("got res %+v err %v, want EINVALID with one whole-body rejection", res, err)
			}
			if !strings.Contains(res.Rejected[0].Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", res.Rejected[0].Reason, tt.reason)
			}
			if len(log.batches) != 1 || len(log.batches[0].Quarantine) != 1 || string(log.batches[0].Quarantine[0].Payload) != tt.body {
				t.Errorf("body not kept whole in quarantine: %+v", log.batches)
			}
		})
	}
}

func TestSubmitTooManyItems(t *testing.T) {
	s, log := newService(t)
	s.MaxItems = 2
	body := `{"readings":[{},{},{}]}`
	res, err := s.Submit(context.Background(), deviceA, "http", []byte(body))
	if vigil.ErrorCode(err) != vigil.ETOOLARGE || res == nil || !strings.Contains(res.Rejected[0].Reason, "at most 2") {
		t.Fatalf("got %+v, %v", res, err)
	}
	if len(log.batches) != 1 || len(log.batches[0].Quarantine) != 1 {
		t.Errorf("not quarantined: %+v", log.batches)
	}
}

// TestSubmitLogFailure checks that a failing log is never acknowledged.
func TestSubmitLogFailure(t *testing.T) {
	s, log := newService(t)
	log.fail = vigil.Errorf(vigil.EUNAVAILABLE, "log closed")
	res, err := s.Submit(context.Background(), deviceA, "http", []byte(`{"readings":[{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z"}]}`))
	if res != nil || vigil.ErrorCode(err) != vigil.EUNAVAILABLE {
		t.Fatalf("got res %+v err %v, want no result and EUNAVAILABLE", res, err)
	}
}

// TestKeysStable checks that the same reading sent twice has the same key
// and different readings have different keys.
func TestKeysStable(t *testing.T) {
	s, log := newService(t)
	item := `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z"}`
	other := `{"code":"8867-4","value":73,"unit":"/min","time":"2026-11-20T09:59:00Z"}`
	for _, body := range []string{item, item, other} {
		if _, err := s.Submit(context.Background(), deviceA, "http", []byte(`{"readings":[`+body+`]}`)); err != nil {
			t.Fatal(err)
		}
	}
	k := func(i int) string { return log.batches[i].Readings[0].Key }
	if k(0) != k(1) || k(0) == k(2) {
		t.Errorf("keys %q %q %q: want first two equal, third different", k(0), k(1), k(2))
	}
}

// TestKeysSeqReuse checks the idempotency keys of readings whose sequence
// number was used before: a retry (same sender, same content) keeps its key,
// so it is stored once; a reading that differs in anything stored (a device
// whose counter reset, a batch repeating a seq) gets a key of its own, so it
// is stored and not taken for a repeat; and senders never share keys. Each
// pair is submitted in two requests, and again in one.
func TestKeysSeqReuse(t *testing.T) {
	const hr = `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":5}`
	tests := []struct {
		name         string
		p1, p2       *vigil.Principal
		first, again string
		same         bool
	}{
		{"retry after a lost acknowledgement", deviceA, deviceA, hr, hr, true},
		{"retry in another spelling of the unit", deviceA, deviceA, hr, strings.Replace(hr, `"/min"`, `"bpm"`, 1), true},
		{"counter reset: later time", deviceA, deviceA, hr, strings.Replace(hr, "09:59:00", "09:59:30", 1), false},
		{"seq repeated: other value", deviceA, deviceA, hr, strings.Replace(hr, "72", "73", 1), false},
		{"seq repeated: other code", deviceA, deviceA, hr, `{"code":"2708-6","value":72,"unit":"%","time":"2026-11-20T09:59:00Z","seq":5}`, false},
		{"seq repeated: other flags", deviceA, deviceA, hr, strings.Replace(hr, `"seq":5`, `"seq":5,"flags":["artifact"]`, 1), false},
		{"seq repeated: other component", deviceA, deviceA,
			`{"code":"85354-9","time":"2026-11-20T09:59:00Z","seq":5,"components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":80,"unit":"mm[Hg]"}]}`,
			`{"code":"85354-9","time":"2026-11-20T09:59:00Z","seq":5,"components":[{"code":"8480-6","value":120,"unit":"mm[Hg]"},{"code":"8462-4","value":81,"unit":"mm[Hg]"}]}`, false},
		{"integration naming the device", deviceA, integration, hr, strings.Replace(hr, `"seq":5`, `"seq":5,"device_id":"dev_a"`, 1), false},
		{"integration naming the device, no seq", deviceA, integration, strings.Replace(hr, `,"seq":5`, "", 1), strings.Replace(hr, `"seq":5`, `"device_id":"dev_a"`, 1), false},
		{"no seq: retry", deviceA, deviceA, strings.Replace(hr, `,"seq":5`, "", 1), strings.Replace(hr, `,"seq":5`, "", 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, log := newService(t)
			for i, body := range []string{tt.first, tt.again} {
				p := tt.p1
				if i == 1 {
					p = tt.p2
				}
				res, err := s.Submit(context.Background(), p, "http", []byte(`{"readings":[`+body+`]}`))
				if err != nil || res.Accepted != 1 {
					t.Fatalf("Submit %s: %+v, %v", body, res, err)
				}
			}
			k1, k2 := log.batches[0].Readings[0].Key, log.batches[1].Readings[0].Key
			if (k1 == k2) != tt.same {
				t.Errorf("keys %q and %q: same %v, want %v", k1, k2, k1 == k2, tt.same)
			}
			if tt.p1 != tt.p2 {
				return
			}
			// The same two in one batch: a duplicate seq within a request.
			res, err := s.Submit(context.Background(), tt.p1, "http", []byte(`{"readings":[`+tt.first+`,`+tt.again+`]}`))
			if err != nil || res.Accepted != 2 || len(res.Keys) != 2 {
				t.Fatalf("Submit both: %+v, %v", res, err)
			}
			if res.Keys[0] != k1 || res.Keys[1] != k2 {
				t.Errorf("keys in one batch %q, want %q and %q as when sent apart", res.Keys, k1, k2)
			}
		})
	}
}

// TestKeysPinned pins the form of each kind of key, which stored readings,
// alert evidence and FHIR identifiers carry: changing it makes retries of
// readings sent before the change look new.
func TestKeysPinned(t *testing.T) {
	s, log := newService(t)
	for _, tt := range []struct {
		p    *vigil.Principal
		item string
		want string
	}{
		{deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17}`, "d:dev_a:17:"},
		{integration, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":17,"device_id":"dev_b"}`, "u:usr_i:17:"},
		{clinician, `{"code":"3151-8","value":2,"unit":"L/min","time":"2026-11-20T09:59:00Z","seq":3,"patient_id":"pat_1"}`, "u:usr_c:3:"},
		{deviceA, `{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z"}`, "h:"},
	} {
		n := len(log.batches)
		if _, err := s.Submit(context.Background(), tt.p, "http", []byte(`{"readings":[`+tt.item+`]}`)); err != nil {
			t.Fatal(err)
		}
		key := log.batches[n].Readings[0].Key
		hash := strings.TrimPrefix(key, tt.want)
		wantLen := 32
		if tt.want == "h:" {
			wantLen = 64
		}
		if !strings.HasPrefix(key, tt.want) || len(hash) != wantLen || strings.Trim(hash, "0123456789abcdef") != "" {
			t.Errorf("key %q, want %q and %d hex digits", key, tt.want, wantLen)
		}
	}
}

func TestDecodeBatchErrorsAreVigilErrors(t *testing.T) {
	_, err := DecodeBatch([]byte("{"))
	var e *vigil.Error
	if !errors.As(err, &e) || e.Code != vigil.EINVALID {
		t.Fatalf("got %v", err)
	}
}

// TestCheck validates like Submit without writing anything.
func TestCheck(t *testing.T) {
	s, log := newService(t)
	body := `{"readings":[
		{"code":"8867-4","value":72,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":1},
		{"code":"8867-4","value":900,"unit":"/min","time":"2026-11-20T09:59:00Z","seq":2},
		{"code":"nope","value":1,"unit":"%","time":"2026-11-20T09:59:00Z","seq":4}]}`
	res, err := s.Check(context.Background(), deviceA, []byte(body))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if res.Accepted != 1 || len(res.Rejected) != 2 || res.Rejected[0].Index != 1 || res.Rejected[1].Index != 2 {
		t.Fatalf("result %+v", res)
	}
	if len(log.batches) != 0 {
		t.Fatalf("Check wrote to the log: %+v", log.batches)
	}
	if _, err := s.Check(context.Background(), deviceA, []byte(`{"readings":[]}`)); vigil.ErrorCode(err) != vigil.EINVALID {
		t.Errorf("empty submission: %v, want EINVALID", err)
	}
}
