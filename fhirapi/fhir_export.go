package fhirapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
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
// A kick-off request starts a job that writes one NDJSON file per resource
// type into ExportDir/<job>/, streaming: it pages through the store (keyset
// pages of vigil.MaxReadingLimit readings) and encodes each resource
// straight into a buffered file, so memory does not grow with the export.
// Jobs live in memory. After a restart their ids are unknown (status and
// downloads answer 404, and the client starts a new export); the first
// kick-off after a restart removes the files they left in ExportDir.
// Finished jobs and their files are removed after exportTTL.

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
)

// exportTypes are the resource types an export can hold, in file order.
var exportTypes = []string{"Patient", "Device", "Observation"}

// exports holds the server's export jobs.
type exports struct {
	mu      sync.Mutex
	jobs    map[string]*exportJob
	cleaned bool // ExportDir cleared of files from before a restart
	wg      sync.WaitGroup
	used    atomic.Int64 // bytes of the jobs' files in ExportDir
}

func newExports() *exports { return &exports{jobs: map[string]*exportJob{}} }

// exportJob is one bulk export. Fields above mu are set before it starts.
// It belongs to the token (or browser session) that started it, tokenID:
// only that token sees its status and files (a user's other tokens do not,
// whatever their scopes); owner is that token's user, for the per-caller
// limit.
type exportJob struct {
	id, owner, tokenID, request, dir string
	types                            []string
	since                            time.Time
	research                         bool           // de-identified (research_export.go)
	deid                             *deid.Manifest // what a research export did, once it finished
	transaction                      time.Time
	cancel                           context.CancelFunc
	done                             chan struct{}
	written                          atomic.Int64
	bytes                            atomic.Int64 // of its files, counted in exports.used

	mu       sync.Mutex
	files    []exportFile // set when finished
	err      error
	finished time.Time
}

type exportFile struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int64  `json:"count"`
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
	if s.ExportDir == "" {
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
	job := &exportJob{owner: p.UserID, tokenID: p.TokenID, request: s.fhirBase(r) + strings.TrimPrefix(r.URL.RequestURI(), fhirPrefix), transaction: s.Time(), done: make(chan struct{})}
	if research {
		if q.Has("_type") || q.Has("_since") {
			return vigil.Errorf(vigil.EINVALID, "a research export takes no _type or _since: it holds de-identified Patients and Observations")
		}
		job.research, job.types = true, []string{"Patient", "Observation"}
	}
	if research {
		// types set above
	} else if v := q.Get("_since"); v != "" {
		t, err := fhir.ParseInstant(v)
		if err != nil {
			return vigil.Errorf(vigil.EINVALID, "_since: %s", vigil.ErrorMessage(err))
		}
		job.since = t
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
			if !slices.Contains(job.types, t) {
				job.types = append(job.types, t)
			}
		}
	} else {
		for _, t := range exportTypes {
			if !gate.Scoped(p) || authScopesBeyondPatient(p, t) {
				job.types = append(job.types, t)
			}
		}
	}

	e := s.exports
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.sweep(s.ExportDir, s.Time()); err != nil {
		return err
	}
	running := 0
	for _, j := range e.jobs {
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
	for _, j := range e.jobs {
		if j.owner == p.UserID {
			kept++
		}
	}
	if max := s.exportsPerCaller(); kept >= max {
		return vigil.Errorf(vigil.ERATELIMITED, "you keep %d exports, the most one caller may keep (%d): delete one you have downloaded (DELETE its status URL) or wait until it expires (%s after it finished)",
			kept, max, exportTTL)
	}
	if used, max := e.used.Load(), s.exportMaxBytes(); used >= max {
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
	job.id = vigil.NewID("exp")
	job.dir = filepath.Join(s.ExportDir, job.id)
	if err := os.MkdirAll(job.dir, 0o700); err != nil {
		return fmt.Errorf("create export directory: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	job.cancel = cancel
	e.jobs[job.id] = job
	e.wg.Add(1)
	base := s.fhirBase(r)
	go func() {
		defer e.wg.Done()
		defer close(job.done)
		defer cancel()
		files, err := s.runExport(ctx, job, src, base)
		job.mu.Lock()
		job.files, job.err, job.finished = files, err, s.Time()
		job.mu.Unlock()
		if err != nil {
			s.Logger.Warn("fhir export failed", "job", job.id, "err", err)
			e.remove(job)
		}
	}()
	w.Header().Set("Content-Location", base+"/$export-status/"+job.id)
	gate.WriteFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "export started: poll the Content-Location"))
	return nil
}

// sweep removes, under e.mu, finished jobs older than exportTTL and, the
// first time, whatever a previous run of the server left in dir.
func (e *exports) sweep(dir string, now time.Time) error {
	if !e.cleaned {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create export directory: %w", err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read export directory: %w", err)
		}
		for _, ent := range ents {
			if _, ok := e.jobs[ent.Name()]; !ok {
				os.RemoveAll(filepath.Join(dir, ent.Name()))
			}
		}
		e.cleaned = true
	}
	for id, j := range e.jobs {
		j.mu.Lock()
		old := !j.finished.IsZero() && now.Sub(j.finished) > exportTTL
		j.mu.Unlock()
		if old {
			e.remove(j)
			delete(e.jobs, id)
		}
	}
	return nil
}

// remove deletes the files of job j and takes them off the budget.
func (e *exports) remove(j *exportJob) error {
	err := os.RemoveAll(j.dir)
	if err == nil {
		e.used.Add(-j.bytes.Swap(0))
	}
	return err
}

// runExport writes the job's files and returns the manifest's outputs.
func (s *Handler) runExport(ctx context.Context, job *exportJob, src patientSource, base string) ([]exportFile, error) {
	if job.research {
		return s.runResearchExport(ctx, job, src, base)
	}
	var files []exportFile
	for _, typ := range job.types {
		n, err := s.exportType(ctx, job, typ, src)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", typ, err)
		}
		if n > 0 {
			files = append(files, exportFile{Type: typ, URL: base + "/$export-file/" + job.id + "/" + typ + ".ndjson", Count: n})
		} else {
			os.Remove(filepath.Join(job.dir, typ+".ndjson"))
		}
	}
	return files, nil
}

// exportType streams every resource of typ into its NDJSON file.
func (s *Handler) exportType(ctx context.Context, job *exportJob, typ string, src patientSource) (n int64, err error) {
	f, err := os.OpenFile(filepath.Join(job.dir, typ+".ndjson"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(&budgetWriter{w: f, s: s, job: job}, exportBufferBytes)
	enc := json.NewEncoder(bw) // one resource per line
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
				if job.since.IsZero() || !p.Created.Before(job.since) {
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
	return n, bw.Flush()
}

func (s *Handler) exportDevices(ctx context.Context, job *exportJob, subject string, emit func(any) error) error {
	ds, err := s.Store.Devices(ctx, vigil.DeviceFilter{SubjectID: subject})
	if err != nil {
		return err
	}
	enc := s.encoder()
	for _, d := range ds {
		if job.since.IsZero() || !d.Created.Before(job.since) {
			if err := emit(enc.Device(d)); err != nil {
				return err
			}
		}
	}
	return nil
}

// exportObservations streams one patient's readings received since
// job.since, a keyset page at a time. The next page is read from the store
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
	q := vigil.ReadingQuery{SubjectID: subject, ReceivedFrom: job.since, Limit: vigil.MaxReadingLimit}
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
// token (or session) started it; ENOTFOUND otherwise (also after a restart,
// and for the same user's other tokens and sessions).
func (s *Handler) exportJobOf(r *http.Request) (*exportJob, error) {
	p := gate.Principal(r.Context())
	s.exports.mu.Lock()
	j, ok := s.exports.jobs[r.PathValue("job")]
	s.exports.mu.Unlock()
	if !ok || p.TokenID == "" || j.tokenID != p.TokenID || j.owner != p.UserID {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export %s not found (exports do not survive a restart of the server)", r.PathValue("job"))
	}
	return j, nil
}

// fhirExportStatus answers the status of an export: 202 with X-Progress
// while it runs, the manifest when it is complete, an OperationOutcome
// (500) if it failed.
func (s *Handler) fhirExportStatus(w http.ResponseWriter, r *http.Request) error {
	j, err := s.exportJobOf(r)
	if err != nil {
		return err
	}
	select {
	case <-j.done:
	default:
		w.Header().Set("X-Progress", strconv.FormatInt(j.written.Load(), 10)+" resources written")
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	j.mu.Lock()
	files, jerr := j.files, j.err
	j.mu.Unlock()
	if jerr != nil {
		if errors.Is(jerr, context.Canceled) {
			return vigil.Errorf(vigil.ENOTFOUND, "export %s was cancelled", j.id)
		}
		if c := vigil.ErrorCode(jerr); c == vigil.ERATELIMITED || c == vigil.EUNAVAILABLE {
			// Stopped by the export budget or a low disk: the caller may
			// know why, and try again later.
			return &vigil.Error{Code: c, Message: "export failed: " + vigil.ErrorMessage(jerr), Err: jerr}
		}
		return vigil.Errorf(vigil.EINTERNAL, "export failed: %v", jerr)
	}
	if files == nil {
		files = []exportFile{}
	}
	var ext map[string]any
	if j.research {
		j.mu.Lock()
		ext = map[string]any{"deidentification": j.deid}
		j.mu.Unlock()
	}
	gate.WriteJSON(w, http.StatusOK, struct {
		TransactionTime     string         `json:"transactionTime"`
		Request             string         `json:"request"`
		RequiresAccessToken bool           `json:"requiresAccessToken"`
		Output              []exportFile   `json:"output"`
		Error               []exportFile   `json:"error"`
		Extension           map[string]any `json:"extension,omitempty"` // a research export: what de-identification did
	}{fhir.Instant(j.transaction), j.request, true, files, []exportFile{}, ext})
	return nil
}

// fhirExportCancel cancels an export (or deletes a finished one) and its
// files: 202.
func (s *Handler) fhirExportCancel(w http.ResponseWriter, r *http.Request) error {
	j, err := s.exportJobOf(r)
	if err != nil {
		return err
	}
	j.cancel()
	<-j.done
	s.exports.mu.Lock()
	delete(s.exports.jobs, j.id)
	s.exports.mu.Unlock()
	if err := s.exports.remove(j); err != nil {
		return fmt.Errorf("remove export files: %w", err)
	}
	gate.WriteFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "export deleted"))
	return nil
}

// fhirExportFile streams one NDJSON file of a finished export to the token
// that started it, if the token's scopes allow reading the file's resource
// type, checked on every download (ENOTFOUND otherwise, as for a file that
// is not there).
func (s *Handler) fhirExportFile(w http.ResponseWriter, r *http.Request) error {
	j, err := s.exportJobOf(r)
	if err != nil {
		return err
	}
	name := r.PathValue("file")
	if typ, ok := strings.CutSuffix(name, ".ndjson"); !ok || (!j.research && gate.Scoped(gate.Principal(r.Context())) && !authScopesBeyondPatient(gate.Principal(r.Context()), typ)) {
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s not found", name)
	}
	j.mu.Lock()
	var found bool
	for _, f := range j.files {
		found = found || f.Type+".ndjson" == name
	}
	j.mu.Unlock()
	if !found {
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s not found", name)
	}
	f, err := os.Open(filepath.Join(j.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		// Deleted by the erasure of a patient it named (package erasure).
		return vigil.Errorf(vigil.ENOTFOUND, "export file %s is gone: the export named an erased patient", name)
	} else if err != nil {
		return fmt.Errorf("open export file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat export file: %w", err)
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	http.ServeContent(w, r, "", st.ModTime(), f)
	return nil
}

// budgetWriter counts what an export writes against the exports' byte
// budget and checks the free disk space every exportSpaceCheck bytes; a
// write that would pass either fails, and so does the export.
type budgetWriter struct {
	w       io.Writer
	s       *Handler
	job     *exportJob
	unCheck int64 // bytes written since the last space check
}

func (b *budgetWriter) Write(p []byte) (int, error) {
	e, n := b.s.exports, int64(len(p))
	if max := b.s.exportMaxBytes(); e.used.Add(n) > max {
		e.used.Add(-n)
		return 0, vigil.Errorf(vigil.ERATELIMITED, "the export would pass the server's budget for export files (%d bytes)", max)
	}
	b.job.bytes.Add(n)
	if b.unCheck += n; b.unCheck >= exportSpaceCheck && b.s.Space != nil {
		b.unCheck = 0
		if err := b.s.Space.CheckOptional(0); err != nil {
			e.used.Add(-n)
			b.job.bytes.Add(-n)
			return 0, err
		}
	}
	m, err := b.w.Write(p)
	if d := n - int64(m); d > 0 {
		e.used.Add(-d)
		b.job.bytes.Add(-d)
	}
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

// Close cancels running exports and waits for them to stop. It is safe to
// call on a server whose Handler was never built.
func (s *Handler) Close() {
	if s.exports == nil {
		return
	}
	s.exports.mu.Lock()
	for _, j := range s.exports.jobs {
		j.cancel()
	}
	s.exports.mu.Unlock()
	s.exports.wg.Wait()
}

// ExportBytes is how many bytes the files of the exports kept in ExportDir
// take now, all exports together (what ExportMaxBytes bounds).
func (s *Handler) ExportBytes() int64 { return s.exports.used.Load() }
