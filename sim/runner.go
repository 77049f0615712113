package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil/client"
)

// Runner drives virtual patients against a Vigil server: it registers the
// patients and their devices through the API, then sends each device's
// readings as the patients produce them.
//
// # Virtual time
//
// Readings carry virtual times, which never run ahead of the wall clock (the
// server refuses readings from the future). The virtual clock starts
// Backfill before the wall clock at the start of Run and runs Speed times
// as fast as the wall clock until it has caught up with it; from then on it
// runs in step with the wall clock. So with Speed 60 and a Backfill of
// 12 hours, twelve hours of history arrive in a little over twelve minutes
// and the run carries on live. When Backfill is zero and Speed is above 1,
// Backfill is set to Duration × (1 − 1/Speed), so that the virtual clock
// reaches the wall clock exactly when Duration of virtual time has passed:
// the run ends "now". Patients start at the virtual clock's start, and so do
// their scenarios' timelines, unless Start says otherwise.
//
// # Resuming
//
// A Runner with the Seed and Start of an earlier run against the same server
// resumes it: patients whose MRN exists are reused, and so are their devices
// (found by serial number, given a new token), and as the patients are
// deterministic, the readings of the earlier run are generated again with
// the same device sequence numbers and contents, which the server stores
// once. The time between the two runs is filled in on the first step.
//
// # Delivery
//
// Each device's readings are sent in order in batches of at most BatchSize,
// with the device's own token. A batch that fails with a network error or a
// temporary server error (5xx, 408, 429) is sent again, unchanged, with
// exponential back-off, until it is answered or ctx ends: delivery is at
// least once and the server stores each (device, seq) once. A batch the
// server refuses as invalid (400, 422) is counted as rejected and dropped; a
// batch too large (413) is split in two. Any other refusal (401, 403, 404)
// ends the run with an error.
//
// Signing in is the caller's business: Client must carry a token allowed to
// register patients and devices. A Runner runs once; its exported fields
// must not change while Run runs.
type Runner struct {
	Client    *client.Client // required
	Patients  int            // number of patients; 1 if 0
	Scenarios []Scenario     // assigned to patients in turn; {Stable} if empty
	Seed      uint64         // patient n has seed PatientSeed(Seed, n) and MRN "SIM-<Seed>-<n>"
	Options   []Option       // applied to every patient
	// Timeline, if not nil, gives each scenario's timeline (for instance
	// Scenario.DemoTimeline) before Options are applied.
	Timeline func(Scenario) Timeline
	// Start is when the patients start, and their scenarios' timelines
	// with them; zero: when the virtual clock starts. A Start before the
	// virtual clock's start makes the patients' first step generate
	// everything from Start on (see Resuming).
	Start time.Time
	// OnPatient, if not nil, is called once patient n is registered (or
	// found registered), with its id, before its devices are; an error
	// ends the run. Callers enrol patients in care teams here.
	OnPatient func(ctx context.Context, n int, patientID string) error
	// OnRegistered, if not nil, is called once every patient and device is
	// registered, before the first readings are sent.
	OnRegistered func()

	Speed    float64       // virtual seconds per wall-clock second while catching up; 1 if 0
	Backfill time.Duration // how far behind the wall clock the virtual clock starts (see above)
	Duration time.Duration // virtual time to simulate; 0 runs until ctx ends

	Interval     time.Duration    // wall-clock time between steps; 1s if 0
	BatchSize    int              // most readings per request; 500 if 0
	Concurrency  int              // most requests in flight; 8 if 0
	RetryBackoff time.Duration    // first wait before a retry, doubling up to 10s; 250ms if 0
	LogEvery     time.Duration    // wall-clock time between progress logs; 5s if 0
	Logger       *slog.Logger     // nil: no logs
	Now          func() time.Time // the wall clock; time.Now if nil
	// Send delivers one device's batch; nil posts it over HTTPS with
	// Client.PostReadings. Another transport (MQTT) plugs in here; its
	// errors follow the same rules (a *client.Error with a 4xx status is a
	// refusal, anything else is retried).
	Send func(ctx context.Context, deviceID, token string, batch []client.ReadingIn) (*client.IngestResult, error)

	generated, sent, accepted, rejected, retries atomic.Int64
	virtual                                      atomic.Int64 // unix nanoseconds
	patients, devices                            atomic.Int64
}

// Stats counts what a Runner has done so far.
type Stats struct {
	Patients  int       // registered
	Devices   int       // registered
	Generated int64     // readings the patients produced
	Sent      int64     // readings in batches the server answered
	Accepted  int64     // readings the server accepted
	Rejected  int64     // readings the server refused
	Retries   int64     // batches sent again after a failure
	Virtual   time.Time // the virtual clock at the last step
}

// Stats returns the Runner's counters. It is safe to call while Run runs.
func (r *Runner) Stats() Stats {
	s := Stats{
		Patients: int(r.patients.Load()), Devices: int(r.devices.Load()),
		Generated: r.generated.Load(), Sent: r.sent.Load(), Accepted: r.accepted.Load(),
		Rejected: r.rejected.Load(), Retries: r.retries.Load(),
	}
	if v := r.virtual.Load(); v != 0 {
		s.Virtual = time.Unix(0, v).UTC()
	}
	return s
}

// PatientSeed returns the seed of a Runner's patient n, so that a run's
// patients can be made again with NewPatient.
func PatientSeed(runSeed uint64, n int) uint64 { return splitmix(runSeed ^ splitmix(uint64(n))) }

// simDevice is one registered device and the readings it has yet to send.
type simDevice struct {
	id, token string
	pending   []client.ReadingIn
}

type simPatient struct {
	id      string
	p       *Patient
	devices [numDevices]*simDevice
}

// Run registers the patients and their devices, then sends their readings
// until Duration of virtual time has been sent (and returns nil) or ctx ends
// (and returns ctx.Err()). It returns an error if registration fails or the
// server refuses a device.
func (r *Runner) Run(ctx context.Context) error {
	if r.Client == nil {
		return errors.New("run simulation: no client")
	}
	scenarios := r.Scenarios
	if len(scenarios) == 0 {
		scenarios = []Scenario{Stable}
	}
	for _, sc := range scenarios {
		if !sc.valid() {
			return fmt.Errorf("run simulation: unknown scenario %q", sc)
		}
	}
	npat := max(r.Patients, 1)
	speed := r.Speed
	if speed <= 0 {
		speed = 1
	}
	backfill := r.Backfill
	if backfill == 0 && speed > 1 && r.Duration > 0 {
		backfill = time.Duration(float64(r.Duration) * (1 - 1/speed))
	}
	interval := orDefault(r.Interval, time.Second)
	logEvery := orDefault(r.LogEvery, 5*time.Second)
	now := r.Now
	if now == nil {
		now = time.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	wall0 := now()
	v0 := wall0.Add(-backfill).Truncate(time.Second)
	clock := func(wall time.Time) time.Time {
		if ahead := speed * float64(wall.Sub(wall0)); ahead < float64(wall.Sub(v0)) {
			return v0.Add(time.Duration(ahead))
		}
		return wall
	}

	start := v0
	if !r.Start.IsZero() {
		start = r.Start.UTC()
	}
	pats, err := r.registerAll(ctx, log, npat, scenarios, start)
	if err != nil {
		return fmt.Errorf("run simulation: %w", err)
	}
	if speed > 1 && backfill == 0 {
		log.Warn("simulation speed has no effect without Backfill or Duration", "speed", speed)
	}
	if r.OnRegistered != nil {
		r.OnRegistered()
	}
	log.Info("simulation registered", "patients", npat, "devices", npat*numDevices, "virtual_start", v0, "speed", speed, "backfill", backfill, "duration", r.Duration)

	lastLog := wall0
	var prev time.Time
	for {
		wall := now()
		v := clock(wall)
		if v.Before(prev) {
			v = prev
		}
		done := false
		if r.Duration > 0 && !v.Before(v0.Add(r.Duration)) {
			v, done = v0.Add(r.Duration), true
		}
		prev = v
		for _, sp := range pats {
			rs := sp.p.Step(v)
			r.generated.Add(int64(len(rs)))
			for i := range rs {
				d := sp.devices[devIndex(rs[i].Device)]
				d.pending = append(d.pending, rs[i].In())
			}
		}
		r.virtual.Store(v.UnixNano())
		if err := r.flush(ctx, log, pats); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("run simulation: %w", err)
		}
		if done || wall.Sub(lastLog) >= logEvery {
			lastLog = wall
			s := r.Stats()
			log.Info("simulation progress", "virtual", v, "lag", wall.Sub(v).Round(time.Second), "generated", s.Generated,
				"sent", s.Sent, "accepted", s.Accepted, "rejected", s.Rejected, "retries", s.Retries)
		}
		if done {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// registerAll creates the patients and their devices, up to Concurrency
// patients at a time.
func (r *Runner) registerAll(ctx context.Context, log *slog.Logger, npat int, scenarios []Scenario, start time.Time) ([]*simPatient, error) {
	pats := make([]*simPatient, npat)
	errs := make([]error, npat)
	sem := make(chan struct{}, orDefault(r.Concurrency, 8))
	var wg sync.WaitGroup
	for n := range pats {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sc := scenarios[n%len(scenarios)]
			opts := r.Options
			if r.Timeline != nil && sc != Stable {
				opts = append([]Option{WithTimeline(r.Timeline(sc))}, r.Options...)
			}
			p := NewPatient(PatientSeed(r.Seed, n), sc, start, opts...)
			pats[n], errs[n] = r.register(ctx, log, n, p)
		})
	}
	wg.Wait()
	return pats, errors.Join(errs...)
}

// register creates patient n and its devices.
func (r *Runner) register(ctx context.Context, log *slog.Logger, n int, p *Patient) (*simPatient, error) {
	sp := &simPatient{p: p}
	in := client.PatientIn{Name: p.Name(), BirthDate: p.BirthDate(), MRN: fmt.Sprintf("SIM-%d-%d", r.Seed, n)}
	reused := false
	err := r.retry(ctx, log, func() error {
		id, err := r.Client.CreatePatient(ctx, in)
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict {
			// Registered by an earlier run with this seed, or by this run
			// when an answer was lost: carry on with that patient.
			page, lerr := r.Client.Patients(ctx, client.PatientsQuery{MRN: in.MRN, Limit: 1})
			if lerr == nil && len(page.Patients) == 1 && page.Patients[0].MRN == in.MRN {
				log.Info("simulation reuses patient", "mrn", in.MRN, "id", page.Patients[0].ID)
				id, err = page.Patients[0].ID, nil
				reused = true
			}
		}
		sp.id = id
		return err
	})
	if err != nil {
		return nil, err
	}
	r.patients.Add(1)
	if r.OnPatient != nil {
		if err := r.OnPatient(ctx, n, sp.id); err != nil {
			return nil, err
		}
	}
	// A reused patient keeps its devices: the same ids, so that readings
	// generated again carry the keys they were stored under.
	existing := map[string]string{} // serial → device id
	if reused {
		var ds []client.Device
		err := r.retry(ctx, log, func() (err error) {
			ds, err = r.Client.Devices(ctx, sp.id)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.Revoked == nil && d.PatientID == sp.id {
				existing[d.Serial] = d.ID
			}
		}
	}
	for i, kind := range DeviceKinds() {
		d := client.DeviceIn{Kind: string(kind), Model: "Vigil Sim " + string(kind), Serial: fmt.Sprintf("SIM-%d-%d-%s", r.Seed, n, kind), PatientID: sp.id}
		var created *client.DeviceCreated
		err := r.retry(ctx, log, func() (err error) {
			if id, ok := existing[d.Serial]; ok {
				created, err = r.Client.RotateDeviceToken(ctx, id)
			} else {
				created, err = r.Client.CreateDevice(ctx, d)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		sp.devices[i] = &simDevice{id: created.ID, token: created.Token}
		r.devices.Add(1)
	}
	return sp, nil
}

// flush sends every device's pending readings, devices concurrently and
// each device's batches in order. It returns the first fatal error.
func (r *Runner) flush(ctx context.Context, log *slog.Logger, pats []*simPatient) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, orDefault(r.Concurrency, 8))
	var wg sync.WaitGroup
	for _, sp := range pats {
		for _, d := range sp.devices {
			if len(d.pending) == 0 {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return context.Cause(ctx)
			}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := r.drain(ctx, log, d); err != nil {
					cancel(err)
				}
			})
		}
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// drain sends d's pending readings in batches.
func (r *Runner) drain(ctx context.Context, log *slog.Logger, d *simDevice) error {
	size := orDefault(r.BatchSize, 500)
	for len(d.pending) > 0 {
		n := min(size, len(d.pending))
		if err := r.send(ctx, log, d, d.pending[:n]); err != nil {
			return err
		}
		d.pending = d.pending[n:]
	}
	d.pending = nil
	return nil
}

// send delivers one batch at least once.
func (r *Runner) send(ctx context.Context, log *slog.Logger, d *simDevice, batch []client.ReadingIn) error {
	var res *client.IngestResult
	err := r.retry(ctx, log, func() (err error) {
		if r.Send != nil {
			res, err = r.Send(ctx, d.id, d.token, batch)
		} else {
			res, err = r.Client.PostReadings(ctx, d.token, batch)
		}
		return err
	})
	var apiErr *client.Error
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge && len(batch) > 1:
		half := len(batch) / 2
		if err := r.send(ctx, log, d, batch[:half]); err != nil {
			return err
		}
		return r.send(ctx, log, d, batch[half:])
	case errors.As(err, &apiErr) && (apiErr.Status == http.StatusBadRequest || apiErr.Status == http.StatusUnprocessableEntity ||
		apiErr.Status == http.StatusRequestEntityTooLarge):
		r.sent.Add(int64(len(batch)))
		r.rejected.Add(int64(len(batch)))
		reason := apiErr.Message
		if res != nil && len(res.Rejected) > 0 {
			reason = res.Rejected[0].Reason
		}
		log.Warn("simulation batch refused", "device", d.id, "readings", len(batch), "reason", reason)
		return nil
	default:
		return fmt.Errorf("send readings of device %s: %w", d.id, err)
	}
	r.sent.Add(int64(len(batch)))
	r.accepted.Add(int64(res.Accepted))
	r.rejected.Add(int64(len(res.Rejected)))
	if len(res.Rejected) > 0 {
		log.Debug("simulation readings rejected", "device", d.id, "rejected", len(res.Rejected), "reason", res.Rejected[0].Reason)
	}
	return nil
}

// retry calls fn until it succeeds, fails with an error that is not worth
// retrying (an *client.Error that is not Temporary), or ctx ends.
func (r *Runner) retry(ctx context.Context, log *slog.Logger, fn func() error) error {
	backoff := orDefault(r.RetryBackoff, 250*time.Millisecond)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var apiErr *client.Error
		if errors.As(err, &apiErr) && !apiErr.Temporary() {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		r.retries.Add(1)
		log.Debug("simulation retries", "err", err, "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// orDefault returns v, or def if v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
