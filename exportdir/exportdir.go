// Package exportdir keeps FHIR bulk export jobs and their files in a local
// directory (vigil.ExportFiles for one node, the default with the embedded
// store): one subdirectory per job holding job.json (the job) and its
// NDJSON files. A node on PostgreSQL keeps them in the database instead
// (package postgres), where every node reads them.
package exportdir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigil-health/vigil"
)

// jobFile is the job's record in its directory.
const jobFile = "job.json"

// Dir is the directory of export jobs. The zero value is not usable:
// create it with New. Its methods are safe for concurrent use within one
// process; the directory belongs to one node.
type Dir struct {
	root string
	mu   sync.Mutex // orders job.json writes against removals
}

var _ vigil.ExportFiles = (*Dir)(nil)

// New returns the export directory root, created (0700) when a job is.
func New(root string) *Dir { return &Dir{root: root} }

// Root is the directory's path.
func (d *Dir) Root() string { return d.root }

// validName reports whether name is a plain file or job name.
func validName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 128 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (d *Dir) jobDir(id string) (string, error) {
	if !validName(id) {
		return "", vigil.Errorf(vigil.ENOTFOUND, "export %q not found", id)
	}
	return filepath.Join(d.root, id), nil
}

// CreateExport implements vigil.ExportFiles.
func (d *Dir) CreateExport(ctx context.Context, j *vigil.ExportJob) error {
	if !validName(j.ID) {
		return vigil.Errorf(vigil.EINVALID, "export id %q: letters, digits, '.', '_' and '-' only", j.ID)
	}
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return fmt.Errorf("create export directory: %w", err)
	}
	dir := filepath.Join(d.root, j.ID)
	if err := os.Mkdir(dir, 0o700); errors.Is(err, fs.ErrExist) {
		return vigil.Errorf(vigil.ECONFLICT, "export %s exists", j.ID)
	} else if err != nil {
		return fmt.Errorf("create export: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := writeJob(dir, j); err != nil {
		os.RemoveAll(dir)
		return err
	}
	return nil
}

// writeJob replaces dir's job.json by j, atomically (a temporary file
// renamed over it).
func writeJob(dir string, j *vigil.ExportJob) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode export: %w", err)
	}
	tmp := filepath.Join(dir, jobFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return vigil.Errorf(vigil.ENOTFOUND, "export %s not found", j.ID)
		}
		return fmt.Errorf("write export: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, jobFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write export: %w", err)
	}
	return nil
}

// readJob reads the job of directory dir; ENOTFOUND without one. A
// directory without a readable job.json (left by an older version, or a
// crash while it was created) is returned as a job with only its ID, in
// no state.
func readJob(dir, id string) (*vigil.ExportJob, error) {
	b, err := os.ReadFile(filepath.Join(dir, jobFile))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); serr != nil {
			return nil, vigil.Errorf(vigil.ENOTFOUND, "export %s not found", id)
		}
		return &vigil.ExportJob{ID: id}, nil
	} else if err != nil {
		return nil, fmt.Errorf("read export: %w", err)
	}
	var j vigil.ExportJob
	if err := json.Unmarshal(b, &j); err != nil || j.ID != id {
		return &vigil.ExportJob{ID: id}, nil
	}
	return &j, nil
}

// Export implements vigil.ExportFiles.
func (d *Dir) Export(ctx context.Context, id string) (*vigil.ExportJob, error) {
	dir, err := d.jobDir(id)
	if err != nil {
		return nil, err
	}
	return readJob(dir, id)
}

// Exports implements vigil.ExportFiles. Directories without a job record
// are listed in no state, so that a sweep removes them.
func (d *Dir) Exports(ctx context.Context) ([]*vigil.ExportJob, error) {
	ents, err := os.ReadDir(d.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	var js []*vigil.ExportJob
	for _, e := range ents {
		if !e.IsDir() || !validName(e.Name()) {
			continue
		}
		j, err := readJob(filepath.Join(d.root, e.Name()), e.Name())
		if vigil.ErrorCode(err) == vigil.ENOTFOUND {
			continue // removed meanwhile
		} else if err != nil {
			return nil, err
		}
		js = append(js, j)
	}
	return js, nil // ReadDir sorts by name
}

// UpdateExport implements vigil.ExportFiles.
func (d *Dir) UpdateExport(ctx context.Context, j *vigil.ExportJob) error {
	dir, err := d.jobDir(j.ID)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur, err := readJob(dir, j.ID)
	if err != nil {
		return err
	}
	if cur.State != vigil.ExportRunning {
		return vigil.Errorf(vigil.ENOTFOUND, "export %s is no longer running", j.ID)
	}
	if j.State == vigil.ExportFailed {
		names, err := d.ExportFileNames(ctx, j.ID)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove export file: %w", err)
			}
		}
	}
	return writeJob(dir, j)
}

// CreateExportFile implements vigil.ExportFiles.
func (d *Dir) CreateExportFile(ctx context.Context, jobID, name string) (io.WriteCloser, error) {
	dir, err := d.jobDir(jobID)
	if err != nil {
		return nil, err
	}
	if !validName(name) || strings.HasPrefix(name, jobFile) {
		return nil, vigil.Errorf(vigil.EINVALID, "export file name %q: letters, digits, '.', '_' and '-' only", name)
	}
	if j, err := readJob(dir, jobID); err != nil {
		return nil, err
	} else if j.State != vigil.ExportRunning {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export %s is no longer running", jobID)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil, vigil.Errorf(vigil.ECONFLICT, "export file %s exists", name)
	case errors.Is(err, fs.ErrNotExist):
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export %s not found", jobID)
	case err != nil:
		return nil, fmt.Errorf("create export file: %w", err)
	}
	return f, nil
}

// file is an open export file.
type file struct {
	*os.File
	st fs.FileInfo
}

func (f file) Size() int64        { return f.st.Size() }
func (f file) ModTime() time.Time { return f.st.ModTime() }

// OpenExportFile implements vigil.ExportFiles.
func (d *Dir) OpenExportFile(ctx context.Context, jobID, name string) (vigil.ExportFile, error) {
	dir, err := d.jobDir(jobID)
	if err != nil {
		return nil, err
	}
	if !validName(name) || strings.HasPrefix(name, jobFile) {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export file %s not found", name)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export file %s not found", name)
	} else if err != nil {
		return nil, fmt.Errorf("open export file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open export file: %w", err)
	}
	return file{f, st}, nil
}

// ExportFileNames implements vigil.ExportFiles.
func (d *Dir) ExportFileNames(ctx context.Context, jobID string) ([]string, error) {
	dir, err := d.jobDir(jobID)
	if err != nil {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list export files: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), jobFile) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// RemoveExport implements vigil.ExportFiles.
func (d *Dir) RemoveExport(ctx context.Context, id string) error {
	dir, err := d.jobDir(id)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove export: %w", err)
	}
	return nil
}

// ExportBytes implements vigil.ExportFiles: the sizes of every job's files
// (not the job records).
func (d *Dir) ExportBytes(ctx context.Context) (int64, error) {
	var n int64
	err := filepath.WalkDir(d.root, func(p string, de fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		} else if err != nil {
			return err
		}
		if !de.Type().IsRegular() || strings.HasPrefix(de.Name(), jobFile) {
			return nil
		}
		st, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return err
		}
		n += st.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("export bytes: %w", err)
	}
	return n, nil
}

// EraseExports implements vigil.ExportFiles. Files are scanned a block at
// a time.
func (d *Dir) EraseExports(ctx context.Context, subjectID string) (int, error) {
	if subjectID == "" {
		return 0, nil
	}
	js, err := d.Exports(ctx)
	if err != nil {
		return 0, fmt.Errorf("erase exports: %w", err)
	}
	n := 0
	for _, j := range js {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		names, err := d.ExportFileNames(ctx, j.ID)
		if err != nil {
			return n, fmt.Errorf("erase exports: %w", err)
		}
		hit := false
		for _, name := range names {
			if hit, err = fileNames(filepath.Join(d.root, j.ID, name), subjectID); err != nil {
				return n, fmt.Errorf("erase exports: %w", err)
			} else if hit {
				break
			}
		}
		if !hit {
			continue
		}
		if err := d.erase(j.ID, names); err != nil {
			return n, fmt.Errorf("erase exports: %w", err)
		}
		n++
	}
	return n, nil
}

// erase deletes the files names of job id and marks it erased (a job
// without a record is removed whole).
func (d *Dir) erase(id string, names []string) error {
	dir := filepath.Join(d.root, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range names {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	j, err := readJob(dir, id)
	if vigil.ErrorCode(err) == vigil.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	if j.State == "" {
		return os.RemoveAll(dir)
	}
	j.State, j.Outputs = vigil.ExportErased, nil
	return writeJob(dir, j)
}

// fileNames reports whether the file at path holds needle, read a block
// at a time (a match across two blocks is found).
func fileNames(path, needle string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	return ReaderNames(f, needle)
}

// ReaderNames reports whether r holds needle, reading it a block (64 KiB)
// at a time; a match across two blocks is found.
func ReaderNames(r io.Reader, needle string) (bool, error) {
	n := []byte(needle)
	buf := make([]byte, 64<<10+len(n))
	keep := 0 // bytes of the previous block kept at the start of buf
	for {
		m, err := io.ReadFull(r, buf[keep:])
		if bytes.Contains(buf[:keep+m], n) {
			return true, nil
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		keep = min(len(n)-1, keep+m)
		copy(buf, buf[len(buf)-keep:])
	}
}
