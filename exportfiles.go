package vigil

import (
	"context"
	"encoding/json"
	"io"
	"time"
)

// States of a FHIR bulk export job (ExportJob.State).
const (
	ExportRunning  = "running"  // its node is writing its files
	ExportComplete = "complete" // its files are ready for download
	ExportFailed   = "failed"   // it stopped with Error; it has no files
	// ExportErased: the erasure of a patient it named deleted its files
	// (ExportFiles.EraseExports); the job is kept so that a download
	// says why the files are gone.
	ExportErased = "erased"
)

// PrefixExport is the ID prefix of export jobs.
const PrefixExport = "exp"

// ExportJob is one FHIR bulk export as every node sees it: the node that
// runs it (Node) writes its files and its state; any node answers its
// status and serves its files. It holds no patient data: patients appear
// only in its files.
type ExportJob struct {
	ID      string `json:"id"`
	Node    string `json:"node"`     // the node that runs it
	Owner   string `json:"owner"`    // user id of the caller that started it
	TokenID string `json:"token_id"` // the token (or session) that started it: only it sees the job
	Request string `json:"request"`  // the kick-off URL
	// Types are the resource types exported, in file order; Since and
	// Research are the kick-off's parameters.
	Types       []string  `json:"types"`
	Since       time.Time `json:"since,omitzero"`
	Research    bool      `json:"research,omitempty"`
	Transaction time.Time `json:"transaction"` // the kick-off's time
	State       string    `json:"state"`       // ExportRunning, ExportComplete, ExportFailed or ExportErased
	// Written is how many resources the job has written (progress, kept
	// while it runs at least every few seconds); Updated is when its node
	// last wrote the job, so that the job of a node that stopped can be
	// told from a running one.
	Written int64     `json:"written"`
	Updated time.Time `json:"updated"`
	// Outputs are the files of a complete job; ErrorCode and Error say
	// why a failed one failed (a vigil error code and message).
	Outputs   []ExportOutput `json:"outputs,omitempty"`
	ErrorCode string         `json:"error_code,omitempty"`
	Error     string         `json:"error,omitempty"`
	// Deid is what a research export's de-identification did (package
	// deid's manifest, JSON).
	Deid     json.RawMessage `json:"deid,omitempty"`
	Finished time.Time       `json:"finished,omitzero"`
}

// ExportOutput is one file of a complete export: Type.ndjson with Count
// resources.
type ExportOutput struct {
	Type  string `json:"type"`
	Count int64  `json:"count"`
}

// ExportFile is an export file opened for reading. Size is its length in
// bytes; ModTime when it was last written.
type ExportFile interface {
	io.ReadSeekCloser
	Size() int64
	ModTime() time.Time
}

// ExportFiles keeps FHIR bulk export jobs and their files where every node
// sharing the store can read them: a local directory (one node), or the
// PostgreSQL database every node shares. Files are streamed: neither
// writing nor reading holds a whole file in memory. All methods are safe
// for concurrent use.
type ExportFiles interface {
	// CreateExport stores j (State, Updated as given); ECONFLICT if a job
	// with its id exists.
	CreateExport(ctx context.Context, j *ExportJob) error
	// Export returns one job; ENOTFOUND if none.
	Export(ctx context.Context, id string) (*ExportJob, error)
	// Exports returns every job, ordered by id.
	Exports(ctx context.Context) ([]*ExportJob, error)
	// UpdateExport replaces the stored job j.ID by j if the stored one is
	// still running; ENOTFOUND if it is gone or no longer running
	// (removed by another node, or its files erased), which tells its
	// node to stop it. A job updated to ExportFailed loses its files in
	// the same step: a failed job keeps none.
	UpdateExport(ctx context.Context, j *ExportJob) error
	// CreateExportFile creates the file name (such as
	// "Observation.ndjson") of job jobID for writing; ENOTFOUND if the job
	// does not exist or is no longer running, ECONFLICT if the file does, EINVALID for a name
	// other than letters, digits, '.', '_' and '-'. What is written counts
	// in ExportBytes as it is stored; a write after the job was removed
	// fails (ENOTFOUND). Close stores what is buffered.
	CreateExportFile(ctx context.Context, jobID, name string) (io.WriteCloser, error)
	// OpenExportFile opens a file of job jobID for reading; ENOTFOUND if
	// there is none. The reader uses ctx for its reads.
	OpenExportFile(ctx context.Context, jobID, name string) (ExportFile, error)
	// ExportFileNames returns the names of job jobID's files, sorted;
	// none (no error) if the job does not exist.
	ExportFileNames(ctx context.Context, jobID string) ([]string, error)
	// RemoveExport deletes job id and its files; nil if there is none.
	RemoveExport(ctx context.Context, id string) error
	// ExportBytes is how many bytes the files of every job take.
	ExportBytes(ctx context.Context) (int64, error)
	// EraseExports deletes the files of every job any file of which
	// names subjectID (exports name patients by id) and marks the job
	// ExportErased; it returns how many jobs it erased.
	EraseExports(ctx context.Context, subjectID string) (int, error)
}
