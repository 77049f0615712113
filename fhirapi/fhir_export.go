package fhirapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/deid"
	"github.com/vigil-health/vigil/fhir"
	"github.com/vigil-health/vigil/gate"
)

// FHIR Bulk Data export (http://hl7.org/fhir/uv/bulkdata/export.html).
//
// A kick-off request starts a job on the node that receives it, which
// writes one NDJSON file per resource type into Exports (vigil.ExportFiles:
// a local directory, or the PostgreSQL store every node shares),
// streaming: it pages through the store (keyset pages of
// vigil.MaxReadingLimit readings) and encodes each resource straight into
// a buffered file, so memory does not grow with the export. The job itself
// is kept in Exports too, so any node sharing them answers its status and
// serves its files; its node writes its progress every exportHeartbeat. A
// job whose node stopped (its record not updated for exportStale, or, on
// its own node, unknown after a restart) is removed at the next kick-off,
// and its status answers 404 from then on. Finished jobs and their files
// are removed after exportTTL.

var (
	// exporters may export every patient: system clients and admins (who
	// need AdminReadsClinical, as exports carry clinical data).
	exporters = []vigil.Role{vigil.RoleAdmin, vigil.RoleIntegration}
	// groupExporters may also export a care team (Group) they belong to.
	groupExporters = []vigil.Role{vigil.RoleAdmin, vigil.RoleIntegration, vigil.RoleClinician}
)

// Limits of bulk export.
const (
	maxRunningExports = 2
	exportTTL         = 24 * time.Hour
	exportBufferBytes = 256 << 10
	// DefaultExportMaxBytes and DefaultExportsPerCaller are the defaults
	// of gate.Deps.ExportMaxBytes and ExportsPerCaller.
	DefaultExportMaxBytes   = 4 << 30
	DefaultExportsPerCaller = 5
	// exportSpaceCheck is how many bytes an export writes between two
	// checks of the free disk space.
	exportSpaceCheck = 16 << 20
	// exportHeartbeat is how often a running job's node writes its
	// progress; exportStale how long without one makes a running job
	// dead (its node stopped).
	exportHeartbeat = 5 * time.Second
	exportStale     = 2 * time.Minute
)

// exportTypes are the resource types an export can hold, in file order.
var exportTypes = []string{"Patient", "Device", "Observation"}

// exports holds the export jobs this node runs.
type exports struct {
	mu      sync.Mutex
	running map[string]*exportJob
	wg      sync.WaitGroup
}

func newExports() *exports { return &exports{running: map[string]*exportJob{}} }

// exportJob is one bulk export this node runs: rec as stored (its fields
// other than the progress are set before it starts), and what only its
// node has.
type exportJob struct {
	rec     vigil.ExportJob
	cancel  context.CancelFunc
	done    chan struct{}
	written atomic.Int64

	mu   sync.Mutex
	deid *deid.Manifest // what a research export did, once it finished
}

// patientSource lists the patients an export covers, in pages.
type patientSource func(ctx context.Context, after string) ([]*vigil.Patient, error)

// fhirExportAll starts an export of every patient (Patient/$export).
// An integration gated by consent exports the patients who consented to
// it, as they were at the kick-off.
func (s *Handler) fhirExportAll(w http.ResponseWriter, r *http.Request) error {
	src := func(ctx context.Context, after string) ([]*vigil.Patient, error) {
		return s.Store.Patients(ctx, vigil.PatientFilter{After: after, Limit: 500})
	}
	ids, gated, err := s.ConsentedPatients(r.Context(), gate.Principal(r.Context()))
	if err != nil {
		return err
	}
	if gated {
		src = s.idsSource(ids)
	}
	return s.startExport(w, r, src, false)
}

// fhirExportGroup starts an export of a care team's patients
// (Group/{team}/$export); a clinician must be a member of the team.
func (s *Handler) fhirExportGroup(w http.ResponseWriter, r *http.Request) error {
	p := gate.Principal(r.Context())
	team := r.PathValue("id")
	notFound := vigil.Errorf(vigil.ENOTFOUND, "Group/%s not found", team)
	if _, err := s.Store.Team(r.Context(), team); err != nil {
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			return notFound
		}
		return err
	}
	if p.Role == vigil.RoleClinician {
		members, err := s.Store.TeamMembers(r.Context(), team)
		if err != nil {
			return err
		}
		if !slices.Contains(members, p.UserID) {
			return notFound
		}
	}
	ids, err := s.Store.TeamPatients(r.Context(), team)
	if err != nil {
		return err
	}
	// An integration gated by consent exports only the team's patients
	// who consented to it.
	consented, gated, err := s.ConsentedPatients(r.Context(), p)
	if err != nil {
		return err
	}
	if gated {
		ids = slices.DeleteFunc(ids, func(id string) bool { _, ok := slices.BinarySearch(consented, id); return !ok })
	}
	return s.startExport(w, r, s.idsSource(ids), false)
}

// idsSource lists the patients of ids (sorted), in pages.
func (s *Handler) idsSource(ids []string) patientSource {
	return func(ctx context.Context, after string) ([]*vigil.Patient, error) {
		i, _ := slices.BinarySearch(ids, after)
		if after != "" && i < len(ids) && ids[i] == after {
			i++
		}
		page := ids[i:min(i+500, len(ids))]
		if len(page) == 0 {
			return nil, nil
		}
		return s.Store.Patients(ctx, vigil.PatientFilter{IDs: page})
	}
}

// startExport checks a kick-off request and starts its job: 202 with
// Content-Location of the status URL.
// A research export (research) holds the de-identified Patients and
// Observations of the patients src lists (research_export.go) and takes no
// _type or _since.
func (s *Handler) startExport(w http.ResponseWriter, r *http.Request, src patientSource, research bool) error {
	p := gate.Principal(r.Context())
	if s.Exports == nil {
		return vigil.Errorf(vigil.ENOTIMPL, "bulk export is not enabled on this server")
	}
	if p.Role == vigil.RoleAdmin && !s.AdminReadsClinical {
		return vigil.Errorf(vigil.EFORBIDDEN, "exports hold clinical data, which admins may not read on this server")
	}
	if !strings.Contains(r.Header.Get("Prefer"), "respond-async") {
		return vigil.Errorf(vigil.EINVALID, "bulk export needs the header Prefer: respond-async")
	}
	q := r.URL.Query()
	for k := range q {
		if k != "_type" && k != "_since" && k != "_outputFormat" {
			return vigil.Errorf(vigil.EINVALID, "export parameter %q is not supported (_type, _since, _outputFormat)", k)
		}
	}
	switch q.Get("_outputFormat") {
	case "", "application/fhir+ndjson", "application/ndjson", "ndjson":
	default:
		return vigil.Errorf(vigil.EINVALID, "_outputFormat: only application/fhir+ndjson")
	}
	now := s.Time()
	job := &exportJob{rec: vigil.ExportJob{Node: s.NodeID, Owner: p.UserID, TokenID: p.TokenID, Request: s.fhirBase(r) + strings.TrimPrefix(r.URL.RequestURI(), fhirPrefix),
		Transaction: now, Updated: now, State: vigil.ExportRunning}, done: make(chan struct{})}
	rec := &job.rec
	if research {
		if q.Has("_type") || q.Has("_since") {
			return vigil.Errorf(vigil.EINVALID, "a research export takes no _type or _since: it holds de-identified Patients and Observations")
		}
		rec.Research, rec.Types = true, []string{"Patient", "Observation"}
	}
	if research {
		// types set above
	} else if v := q.Get("_since"); v != "" {
		t, err := fhir.ParseInstant(v)
		if err != nil {
			return vigil.Errorf(vigil.EINVALID, "_since: %s", vigil.ErrorMessage(err))
		}
		rec.Since = t
	}
	if research {
		// types set above
	} else if v := q.Get("_type"); v != "" {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(exportTypes, t) {
				return vigil.Errorf(vigil.EINVALID, "_type: %q is not exported (Patient, Device, Observation)", t)
			}
			if gate.Scoped(p) && !authScopesBeyondPatient(p, t) {
				return vigil.Errorf(vigil.EFORBIDDEN, "this token's scopes do not allow reading %s", t)
			}
			if !slices.Contains(rec.Types, t) {
				rec.Types = append(rec.Types, t)
			}
		}
	} else {
		for _, t := range exportTypes {
			if !gate.Scoped(p) || authScopesBeyondPatient(p, t) {
				rec.Types = append(rec.Types, t)
			}
		}
	}

	ctx := r.Context()
	e := s.exports
	e.mu.Lock()
	defer e.mu.Unlock()
	jobs, err := s.sweep(ctx, now)
	if err != nil {
		return err
	}
	running := 0
	for _, j := range e.running {
		select {
		case <-j.done:
		default:
			running++
		}
	}
	if running >= maxRunningExports {
		w.Header().Set("Retry-After", "60")
		return vigil.Errorf(vigil.ERATELIMITED, "%d exports are running: try again later", running)
	}
	kept := 0
	for _, j := range jobs {
		if j.Owner == p.UserID {
			kept++
		}
	}
	if max := s.exportsPerCaller(); kept >= max {
		return vigil.Errorf(vigil.ERATELIMITED, "you keep %d exports, the most one caller may keep (%d): delete one you have downloaded (DELETE its status URL) or wait until it expires (%s after it finished)",
			kept, max, exportTTL)
	}
	used, err := s.Exports.ExportBytes(ctx)
	if err != nil {
		return err
	}
	if max := s.exportMaxBytes(); used >= max {
		w.Header().Set("Retry-After", "3600")
		return vigil.Errorf(vigil.ERATELIMITED, "the files of finished exports take %d bytes, the server's budget for exports (%d): wait until exports are deleted or expire",
			used, max)
	}
	if s.Space != nil {
		if err := s.Space.CheckOptional(0); err != nil {
			w.Header().Set("Retry-After", "600")
			return err
		}
	}
	rec.ID = vigil.NewID(vigil.PrefixExport)
	if err := s.Exports.CreateExport(ctx, rec); err != nil {
		return fmt.Errorf("create export: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	job.cancel = cancel
	e.running[rec.ID] = job
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(job.done)
		defer cancel()
		s.run(rctx, job, src)
		e.mu.Lock()
		delete(e.running, job.rec.ID)
		e.mu.Unlock()
	}()
	w.Header().Set("Content-Location", s.fhirBase(r)+"/$export-status/"+rec.ID)
	gate.WriteFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "export started: poll the Content-Location"))
	return nil
}

// run runs job until it finishes, writing its progress every
// exportHeartbeat (and stopping it if its record is gone: DELETE through
// another node, or an erasure), then its outcome.
func (s *Handler) run(ctx context.Context, job *exportJob, src patientSource) {
	beat := make(chan struct{})
	beatDone := make(chan struct{})
	go func() {
		defer close(beatDone)
		t := time.NewTicker(exportHeartbeat)
		defer t.Stop()
		for {
			select {
			case <-beat:
				return
			case <-t.C:
				rec := job.rec
				rec.Written, rec.Updated = job.written.Load(), s.Time()
				if err := s.Exports.UpdateExport(ctx, &rec); vigil.ErrorCode(err) == vigil.ENOTFOUND {
					job.cancel()
				} else if err != nil && ctx.Err() == nil {
					s.Logger.Warn("fhir export: progress not saved", "job", rec.ID, "err", err)
				}
			}
		}
	}()
	outs, err := s.runExport(ctx, job, src)
	close(beat)
	<-beatDone
	rec := job.rec
	rec.Written, rec.Updated, rec.Finished = job.written.Load(), s.Time(), s.Time()
	if err == nil {
		rec.State, rec.Outputs = vigil.ExportComplete, outs
		job.mu.Lock()
		if job.deid != nil {
			if rec.Deid, err = json.Marshal(job.deid); err != nil {
				err = fmt.Errorf("encode de-identification manifest: %w", err)
			}
		}
		job.mu.Unlock()
	}
	if err != nil {
		s.Logger.Warn("fhir export failed", "job", rec.ID, "err", err)
		rec.State, rec.Outputs = vigil.ExportFailed, nil
		switch c := vigil.ErrorCode(err); {
		case errors.Is(err, context.Canceled):
			rec.ErrorCode, rec.Error = vigil.ENOTFOUND, "export "+rec.ID+" was cancelled"
		case c == vigil.ERATELIMITED || c == vigil.EUNAVAILABLE:
			// Stopped by the export budget or a low disk: the caller may
			// know why, and try again later.
			rec.ErrorCode, rec.Error = c, "export failed: "+vigil.ErrorMessage(err)
		default:
			rec.ErrorCode, rec.Error = vigil.EINTERNAL, fmt.Sprintf("export failed: %v", err)
		}
	}
	// A failed job's files are deleted with the update (UpdateExport).
	if uerr := s.Exports.UpdateExport(context.WithoutCancel(ctx), &rec); uerr != nil && vigil.ErrorCode(uerr) != vigil.ENOTFOUND {
		s.Logger.Warn("fhir export: outcome not saved", "job", rec.ID, "err", uerr)
		if rec.State == vigil.ExportFailed {
			s.Exports.RemoveExport(context.WithoutCancel(ctx), rec.ID)
		}
	}
}

// sweep removes, under e.mu, finished jobs older than exportTTL, running
// jobs whose node stopped, and what is no job (left by an older version),
// and returns the jobs left.
func (s *Handler) sweep(ctx context.Context, now time.Time) ([]*vigil.ExportJob, error) {
	e := s.exports
	jobs, err := s.Exports.Exports(ctx)
	if err != nil {
		return nil, err
	}
	kept := jobs[:0]
	for _, j := range jobs {
		var dead bool
		switch j.State {
		case vigil.ExportRunning:
			// This node's own jobs are alive while it runs them; another
			// node's while it writes their progress.
			_, mine := e.running[j.ID]
			dead = !mine && (j.Node == s.NodeID || now.Sub(j.Updated) > exportStale)
		case vigil.ExportComplete, vigil.ExportFailed, vigil.ExportErased:
			dead = now.Sub(j.Finished) > exportTTL
		default:
			dead = true
		}
		if !dead {
			kept = append(kept, j)
			continue
		}
		if err := s.Exports.RemoveExport(ctx, j.ID); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// runExport writes the job's files and returns the manifest's outputs.
func (s *Handler) runExport(ctx context.Context, job *exportJob, src patientSource) ([]vigil.ExportOutput, error) {
	if job.rec.Research {
		return s.runResearchExport(ctx, job, src)
	}
	var outs []vigil.ExportOutput
	for _, typ := range job.rec.Types {
		n, err := s.exportType(ctx, job, typ, src)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", typ, err)
		}
		if n > 0 {
			outs = append(outs, vigil.ExportOutput{Type: typ, Count: n})
		}
	}
	return outs, nil
}

// exportType streams every resource of typ into its NDJSON file.
func (s *Handler) exportType(ctx context.Context, job *exportJob, typ string, src patientSource) (n int64, err error) {
	f, err := s.createExportFile(ctx, job, typ+".ndjson")
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	enc := json.NewEncoder(f) // one resource per line
	fenc := s.encoder()
	emit := func(v any) error {
		if err := enc.Encode(v); err != nil {
			return err
		}
		n++
		job.written.Add(1)
		return nil
	}
	after := ""
	for {
		ps, err := src(ctx, after)
		if err != nil {
			return n, err
		}
		if len(ps) == 0 {
			break
		}
		for _, p := range ps {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			switch typ {
			case "Patient":
				if job.rec.Since.IsZero() || !p.Created.Before(job.rec.Since) {
					err = emit(fenc.Patient(p))
				}
			case "Device":
				err = s.exportDevices(ctx, job, p.ID, emit)
			case "Observation":
				err = s.exportObservations(ctx, job, p.ID, emit)
			}
			if err != nil {
				return n, err
			}
		}
		after = ps[len(ps)-1].ID
	}
	return n, nil
}

func (s *Handler) exportDevices(ctx context.Context, job *exportJob, subject string, emit func(any) error) error {
	ds, err := s.Store.Devices(ctx, vigil.DeviceFilter{SubjectID: subject})
	if err != nil {
		return err
	}
	enc := s.encoder()
	for _, d := range ds {
		if job.rec.Since.IsZero() || !d.Created.Before(job.rec.Since) {
			if err := emit(enc.Device(d)); err != nil {
				return err
			}
		}
	}
	return nil
}

// exportObservations streams one patient's readings received since
// job.rec.Since, a keyset page at a time. The next page is read from the store
// while the current one is encoded, so the two overlap on separate cores;
// at most two pages are in memory.
func (s *Handler) exportObservations(ctx context.Context, job *exportJob, subject string, emit func(any) error) error {
	type result struct {
		page vigil.ReadingPage
		err  error
	}
	fetch := func(q vigil.ReadingQuery) <-chan result {
		ch := make(chan result, 1)
		go func() {
			p, err := s.Store.Readings(ctx, q)
			ch <- result{p, err}
		}()
		return ch
	}
	enc := s.encoder()
	q := vigil.ReadingQuery{SubjectID: subject, ReceivedFrom: job.rec.Since, Limit: vigil.MaxReadingLimit}
	next := fetch(q)
	for {
		res := <-next
		if res.err != nil {
			return res.err
		}
		if res.page.Next != nil {
			q.After = res.page.Next
			next = fetch(q)
		}
		for i := range res.page.Readings {
			if err := emit(enc.Observation(&res.page.Readings[i])); err != nil {
				if res.page.Next != nil {
					<-next // let the prefetch finish before returning
				}
				return err
			}
		}
		if res.page.Next == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			<-next
			return err
		}
	}
}

// exportJobOf returns the job of the request's {job}, if the caller's
// token (or session) started it; ENOTFOUND otherwise (also once it was
// removed, and for the same user's other tokens and sessions).
func (s *Handler) exportJobOf(r *http.Request) (*vigil.ExportJob, error) {
	p := gate.Principal(r.Context())
	notFound := vigil.Errorf(vigil.ENOTFOUND, "export %s not found (exports do not survive a restart of the node that ran them)", r.PathValue("job"))
	if s.Exports == nil {
		return nil, notFound
	}
	j, err := s.Exports.Export(r.Context(), r.PathValue("job"))
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil, notFound
	} else if err != nil {
		return nil, err
	}
	if p.TokenID == "" || j.TokenID != p.TokenID || j.Owner != p.UserID {
		return nil, notFound
	}
	return j, nil
}

// exportFileRef is a file of the status manifest.
type exportFileRef struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count"`
}

// fhirExportStatus answers the status of an export: 202 with X-Progress
// while it runs, the manifest when it is complete, an OperationOutcome
// (500) if it failed, 404 if its files were erased. Any node answers it.
func (s *Handler) fhirExportStatus(w http.ResponseWriter, r *http.Request) error {
	j, err := s.exportJobOf(r)
	if err != nil {
		return err
	}
	if j.State == vigil.ExportRunning && j.Node == s.NodeID {
		// Read again once this node's running jobs are known: a job that
		// finished in between is no longer among them.
		s.exports.mu.Lock()
		_, running := s.exports.running[j.ID]
		s.exports.mu.Unlock()
		if !running {
			if j, err = s.exportJobOf(r); err != nil {
				return err
			}
		}
	}
	switch j.State {
	case vigil.ExportRunning:
		written := j.Written
		s.exports.mu.Lock()
		mine, ok := s.exports.running[j.ID]
		s.exports.mu.Unlock()
		if ok {
			written = mine.written.Load()
		} else if j.Node == s.NodeID || s.Time().Sub(j.Updated) > exportStale {
			// Its node stopped (this one, restarted, or another that
			// no longer writes its progress): it will not finish.
			return vigil.Errorf(vigil.ENOTFOUND, "export %s not found: the node that ran it stopped; start a new export", j.ID)
		}
		w.Header().Set("X-Progress", strconv.FormatInt(written, 10)+" resources written")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
		return nil
	case vigil.ExportFailed:
		if j.ErrorCode == vigil.EINTERNAL || j.ErrorCode == "" {
			return vigil.Errorf(vigil.EINTERNAL, "%s", j.Error)
		}
		return &vigil.Error{Code: j.ErrorCode, Message: j.Error}
	case vigil.ExportErased:
		return vigil.Errorf(vigil.ENOTFOUND, "export %s is gone: it named a patient who was erased since", j.ID)
	}
	base := s.fhirBase(r)
	files := []exportFileRef{}
	for _, o := range j.Outputs {
		files = append(files, exportFileRef{Type: o.Type, URL: base + "/$export-file/" + j.ID + "/" + o.Type + ".ndjson", Count: o.Count})
	}
	var ext map[string]any
	if j.Research {
		ext = map[string]any{"deidentification": j.Deid}
	}
	gate.WriteJSON(w, http.StatusOK, struct {
		TransactionTime     string          `json:"transactionTime"`
		Request             string          `json:"request"`
		RequiresAccessToken bool            `json:"requiresAccessToken"`
		Output              []exportFileRef `json:"output"`
		Error               []exportFileRef `json:"error"`
		Extension           map[string]any  `json:"extension,omitempty"` // a research export: what de-identification did
	}{fhir.Instant(j.Transaction), j.Request, true, files, []exportFileRef{}, ext})
	return nil
}

// fhirExportCancel cancels an export (or deletes a finished one) and its
// files: 202. A job another node runs stops there at its next write.
func (s *Handler) fhirExportCancel(w http.ResponseWriter, r *http.Request) error {
	j, err := s.exportJobOf(r)
	if err != nil {
		return err
	}
	s.exports.mu.Lock()
	mine := s.exports.running[j.ID]
	s.exports.mu.Unlock()
	if mine != nil {
		mine.cancel()
		<-mine.done
	}
	if err := s.Exports.RemoveExport(r.Context(), j.ID); err != nil {
		return fmt.Errorf("remove export files: %w", err)
	}
	gate.WriteFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "export deleted"))
	return nil
}

// fhirExportFile streams one NDJSON file of a finished export to the token
// that started it, if the token's scopes allow reading the file's resource
// type, checked on every download (ENOTFOUND otherwise, as for a file that
// is not there). Any node serves it.
func (s *Handler) fhirExportFile(w http.ResponseWriter, r *http.Request) error {
	j, err := s.exportJobOf(r)
	if err != nil {
		return err
	}
	name := r.PathValue("file")
	if typ, ok := strings.CutSuffix(name, ".ndjson"); !ok || (!j.Research && gate.Scoped(gate.Principal(r.Context())) && !authScopesBeyondPatient(gate.Principal(r.Context()), typ)) {
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s not found", name)
	}
	if j.State == vigil.ExportErased {
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s is gone: the export named an erased patient", name)
	}
	found := false
	for _, o := range j.Outputs {
		found = found || o.Type+".ndjson" == name
	}
	if j.State != vigil.ExportComplete || !found {
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s not found", name)
	}
	f, err := s.Exports.OpenExportFile(r.Context(), j.ID, name)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		// Deleted by the erasure of a patient it named (package erasure).
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s is gone: the export named an erased patient", name)
	} else if err != nil {
		return fmt.Errorf("open export file: %w", err)
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	http.ServeContent(w, r, "", f.ModTime(), f)
	return nil
}

// createExportFile creates a file of job, written buffered through the
// exports' byte budget; Close writes what is buffered and closes it.
func (s *Handler) createExportFile(ctx context.Context, job *exportJob, name string) (io.WriteCloser, error) {
	f, err := s.Exports.CreateExportFile(ctx, job.rec.ID, name)
	if err != nil {
		return nil, err
	}
	used, err := s.Exports.ExportBytes(ctx)
	if err != nil {
		f.Close()
		return nil, err
	}
	return budgetFile{Writer: bufio.NewWriterSize(&budgetWriter{ctx: ctx, w: f, s: s, base: used}, exportBufferBytes), f: f}, nil
}

// budgetFile is an export file written, buffered, through the exports'
// byte budget; Close writes what is buffered and closes the file.
type budgetFile struct {
	*bufio.Writer
	f io.Closer
}

func (b budgetFile) Close() error {
	err := b.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// budgetWriter counts what an export writes against the exports' byte
// budget and checks the free disk space every exportSpaceCheck bytes; a
// write that would pass either fails, and so does the export. The bytes
// of every export's files (every node's, with a shared store) are read
// from the store when the file is created and at every space check; in
// between, this writer adds what it wrote. Exports running at the same
// time may together pass the budget by what they write between two
// checks (exportSpaceCheck each).
type budgetWriter struct {
	ctx     context.Context
	w       io.Writer
	s       *Handler
	base    int64 // bytes of every export's files at the last check
	since   int64 // bytes written since the last check
	unCheck int64 // bytes written since the last space check
}

func (b *budgetWriter) Write(p []byte) (int, error) {
	n := int64(len(p))
	if max := b.s.exportMaxBytes(); b.base+b.since+n > max {
		return 0, vigil.Errorf(vigil.ERATELIMITED, "the export would pass the server's budget for export files (%d bytes)", max)
	}
	if b.unCheck += n; b.unCheck >= exportSpaceCheck {
		b.unCheck = 0
		if b.s.Space != nil {
			if err := b.s.Space.CheckOptional(0); err != nil {
				return 0, err
			}
		}
		used, err := b.s.Exports.ExportBytes(b.ctx)
		if err != nil {
			return 0, err
		}
		b.base, b.since = used, 0
		if max := b.s.exportMaxBytes(); b.base+n > max {
			return 0, vigil.Errorf(vigil.ERATELIMITED, "the export would pass the server's budget for export files (%d bytes)", max)
		}
	}
	m, err := b.w.Write(p)
	b.since += int64(m)
	return m, err
}

func (s *Handler) exportMaxBytes() int64 {
	if s.ExportMaxBytes > 0 {
		return s.ExportMaxBytes
	}
	return DefaultExportMaxBytes
}

func (s *Handler) exportsPerCaller() int {
	if s.ExportsPerCaller > 0 {
		return s.ExportsPerCaller
	}
	return DefaultExportsPerCaller
}

// Close cancels the exports this node runs and waits for them to stop
// (each is then recorded as cancelled). It is safe to call on a server
// whose Handler was never built.
func (s *Handler) Close() {
	if s.exports == nil {
		return
	}
	s.exports.mu.Lock()
	for _, j := range s.exports.running {
		j.cancel()
	}
	s.exports.mu.Unlock()
	s.exports.wg.Wait()
}

// ExportBytes is how many bytes the files of the exports kept in Exports
// take now, all exports together (what ExportMaxBytes bounds); -1 if they
// cannot be read.
func (s *Handler) ExportBytes() int64 {
	if s.Exports == nil {
		return 0
	}
	n, err := s.Exports.ExportBytes(context.Background())
	if err != nil {
		return -1
	}
	return n
}
