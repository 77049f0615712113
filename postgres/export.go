package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/vigil-health/vigil"
)

// ExportChunkBytes is the size of the chunks export files are stored in:
// every chunk of a file but its last holds exactly this many bytes, so
// that a reader finds the chunk of an offset without a query.
const ExportChunkBytes = 1 << 20

// ExportFiles keeps FHIR bulk export jobs and their files in the database
// (vigil.ExportFiles), where every node sharing it reads them. Files are
// written and read a chunk (ExportChunkBytes) at a time. Create it with
// Store.ExportFiles.
type ExportFiles struct{ db }

var _ vigil.ExportFiles = (*ExportFiles)(nil)

// ExportFiles returns the export jobs and files of s's database, on s's
// connection pool (closed with s).
func (s *Store) ExportFiles() *ExportFiles { return &ExportFiles{s.db} }

// validExportName reports whether name is a plain file name.
func validExportName(name string) bool {
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

// CreateExport implements vigil.ExportFiles.
func (s *ExportFiles) CreateExport(ctx context.Context, j *vigil.ExportJob) error {
	if !validExportName(j.ID) {
		return vigil.Errorf(vigil.EINVALID, "export id %q: letters, digits, '.', '_' and '-' only", j.ID)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode export: %w", err)
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO export_jobs (id, state, job, created) VALUES ($1, $2, $3, $4)", j.ID, j.State, b, s.timestamp())
	if isCode(err, sqlUnique) {
		return vigil.Errorf(vigil.ECONFLICT, "export %s exists", j.ID)
	} else if err != nil {
		return fmt.Errorf("create export: %w", err)
	}
	return nil
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// Export implements vigil.ExportFiles.
func (s *ExportFiles) Export(ctx context.Context, id string) (*vigil.ExportJob, error) {
	var b []byte
	if err := s.pool.QueryRow(ctx, "SELECT job FROM export_jobs WHERE id = $1", id).Scan(&b); err != nil {
		return nil, notFound(err, "export "+id)
	}
	return decodeExport(b)
}

func decodeExport(b []byte) (*vigil.ExportJob, error) {
	var j vigil.ExportJob
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("decode export: %w", err)
	}
	return &j, nil
}

// Exports implements vigil.ExportFiles.
func (s *ExportFiles) Exports(ctx context.Context) ([]*vigil.ExportJob, error) {
	rows, err := s.pool.Query(ctx, "SELECT job FROM export_jobs ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	bs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	js := make([]*vigil.ExportJob, 0, len(bs))
	for _, b := range bs {
		j, err := decodeExport(b)
		if err != nil {
			return nil, err
		}
		js = append(js, j)
	}
	return js, nil
}

// UpdateExport implements vigil.ExportFiles.
func (s *ExportFiles) UpdateExport(ctx context.Context, j *vigil.ExportJob) error {
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encode export: %w", err)
	}
	err = s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE export_jobs SET state = $2, job = $3 WHERE id = $1 AND state = $4", j.ID, j.State, b, vigil.ExportRunning)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "export %s is gone or no longer running", j.ID)
		}
		if j.State == vigil.ExportFailed {
			_, err = tx.Exec(ctx, "DELETE FROM export_files WHERE job_id = $1", j.ID)
		}
		return err
	})
	if err != nil && vigil.ErrorCode(err) != vigil.ENOTFOUND {
		return fmt.Errorf("update export: %w", err)
	}
	return err
}

// CreateExportFile implements vigil.ExportFiles. Each full chunk is
// stored, with the file's size, in a transaction of its own; Close stores
// the last one.
func (s *ExportFiles) CreateExportFile(ctx context.Context, jobID, name string) (io.WriteCloser, error) {
	if !validExportName(name) {
		return nil, vigil.Errorf(vigil.EINVALID, "export file name %q: letters, digits, '.', '_' and '-' only", name)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO export_files (job_id, name, size, modified)
		SELECT id, $2, 0, $3 FROM export_jobs WHERE id = $1 AND state = $4`, jobID, name, s.timestamp(), vigil.ExportRunning)
	switch {
	case isCode(err, sqlUnique):
		return nil, vigil.Errorf(vigil.ECONFLICT, "export file %s exists", name)
	case isCode(err, sqlForeignKey):
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export %s not found", jobID)
	case err != nil:
		return nil, fmt.Errorf("create export file: %w", err)
	case tag.RowsAffected() == 0:
		return nil, vigil.Errorf(vigil.ENOTFOUND, "export %s not found or no longer running", jobID)
	}
	return &chunkWriter{s: s, ctx: ctx, job: jobID, name: name, buf: make([]byte, 0, ExportChunkBytes)}, nil
}

// chunkWriter writes an export file a chunk at a time.
type chunkWriter struct {
	s         *ExportFiles
	ctx       context.Context
	job, name string
	buf       []byte
	seq       int
	err       error // sticky: the first failed store
	closed    bool
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, vigil.Errorf(vigil.EINVALID, "export file %s is closed", w.name)
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), ExportChunkBytes-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == ExportChunkBytes {
			if err := w.flush(); err != nil {
				return n - len(w.buf), err
			}
		}
	}
	return n, nil
}

// flush stores the buffered chunk and adds it to the file's size.
func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.s.write(w.ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(w.ctx, "UPDATE export_files SET size = size + $3, modified = $4 WHERE job_id = $1 AND name = $2", w.job, w.name, len(w.buf), w.s.timestamp())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return vigil.Errorf(vigil.ENOTFOUND, "export %s was removed", w.job)
		}
		_, err = tx.Exec(w.ctx, "INSERT INTO export_chunks (job_id, name, seq, data) VALUES ($1, $2, $3, $4)", w.job, w.name, w.seq, w.buf)
		return err
	})
	if isCode(err, sqlForeignKey) {
		err = vigil.Errorf(vigil.ENOTFOUND, "export %s was removed", w.job)
	}
	if err != nil {
		w.err = fmt.Errorf("write export file: %w", err)
		return w.err
	}
	w.seq++
	w.buf = w.buf[:0]
	return nil
}

func (w *chunkWriter) Close() error {
	if w.closed {
		return w.err
	}
	if w.err == nil {
		w.flush()
	}
	w.closed, w.buf = true, nil
	return w.err
}

// OpenExportFile implements vigil.ExportFiles.
func (s *ExportFiles) OpenExportFile(ctx context.Context, jobID, name string) (vigil.ExportFile, error) {
	f := &chunkReader{s: s, ctx: ctx, job: jobID, name: name, cur: -1}
	err := s.pool.QueryRow(ctx, "SELECT size, modified FROM export_files WHERE job_id = $1 AND name = $2", jobID, name).Scan(&f.size, &f.mod)
	if err != nil {
		return nil, notFound(err, "export file "+name)
	}
	return f, nil
}

// chunkReader reads an export file a chunk at a time: one chunk is in
// memory.
type chunkReader struct {
	s         *ExportFiles
	ctx       context.Context
	job, name string
	size, off int64
	mod       time.Time
	cur       int64 // the chunk in data; -1: none
	data      []byte
}

func (r *chunkReader) Size() int64        { return r.size }
func (r *chunkReader) ModTime() time.Time { return r.mod }
func (r *chunkReader) Close() error       { r.data = nil; return nil }

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	seq := r.off / ExportChunkBytes
	if seq != r.cur {
		r.data = nil
		err := r.s.pool.QueryRow(r.ctx, "SELECT data FROM export_chunks WHERE job_id = $1 AND name = $2 AND seq = $3", r.job, r.name, seq).Scan(&r.data)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, vigil.Errorf(vigil.ENOTFOUND, "export file %s is gone", r.name)
		} else if err != nil {
			return 0, fmt.Errorf("read export file: %w", err)
		}
		r.cur = seq
	}
	i := r.off - seq*ExportChunkBytes
	if i >= int64(len(r.data)) {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.data[i:])
	r.off += int64(n)
	return n, nil
}

func (r *chunkReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, vigil.Errorf(vigil.EINVALID, "seek: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, vigil.Errorf(vigil.EINVALID, "seek: negative offset")
	}
	r.off = offset
	return offset, nil
}

// ExportFileNames implements vigil.ExportFiles.
func (s *ExportFiles) ExportFileNames(ctx context.Context, jobID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT name FROM export_files WHERE job_id = $1 ORDER BY name", jobID)
	if err != nil {
		return nil, fmt.Errorf("list export files: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list export files: %w", err)
	}
	return names, nil
}

// RemoveExport implements vigil.ExportFiles.
func (s *ExportFiles) RemoveExport(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM export_jobs WHERE id = $1", id); err != nil {
		return fmt.Errorf("remove export: %w", err)
	}
	return nil
}

// ExportBytes implements vigil.ExportFiles.
func (s *ExportFiles) ExportBytes(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(sum(size), 0)::bigint FROM export_files").Scan(&n); err != nil {
		return 0, fmt.Errorf("export bytes: %w", err)
	}
	return n, nil
}

// EraseExports implements vigil.ExportFiles: every file is read a chunk at
// a time (a match across two chunks is found); a job with a match loses
// its files and is marked erased, in one transaction.
func (s *ExportFiles) EraseExports(ctx context.Context, subjectID string) (int, error) {
	if subjectID == "" {
		return 0, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT job_id, name FROM export_files ORDER BY job_id, name")
	if err != nil {
		return 0, fmt.Errorf("erase exports: %w", err)
	}
	type file struct{ job, name string }
	files, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (file, error) {
		var f file
		return f, r.Scan(&f.job, &f.name)
	})
	if err != nil {
		return 0, fmt.Errorf("erase exports: %w", err)
	}
	needle := []byte(subjectID)
	var hits []string
	for _, f := range files {
		if slices.Contains(hits, f.job) {
			continue
		}
		hit, err := s.chunksName(ctx, f.job, f.name, needle)
		if err != nil {
			return 0, fmt.Errorf("erase exports: %w", err)
		}
		if hit {
			hits = append(hits, f.job)
		}
	}
	for _, id := range hits {
		err := s.write(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DELETE FROM export_files WHERE job_id = $1", id); err != nil {
				return err
			}
			var b []byte
			if err := tx.QueryRow(ctx, "SELECT job FROM export_jobs WHERE id = $1 FOR UPDATE", id).Scan(&b); errors.Is(err, pgx.ErrNoRows) {
				return nil
			} else if err != nil {
				return err
			}
			j, err := decodeExport(b)
			if err != nil {
				return err
			}
			j.State, j.Outputs = vigil.ExportErased, nil
			if b, err = json.Marshal(j); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "UPDATE export_jobs SET state = $2, job = $3 WHERE id = $1", id, j.State, b)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("erase exports: %w", err)
		}
	}
	return len(hits), nil
}

// chunksName reports whether a file's chunks hold needle, reading one
// chunk at a time.
func (s *ExportFiles) chunksName(ctx context.Context, job, name string, needle []byte) (bool, error) {
	var tail []byte // the end of the previous chunk, for a match across two
	for seq := 0; ; seq++ {
		var data []byte
		err := s.pool.QueryRow(ctx, "SELECT data FROM export_chunks WHERE job_id = $1 AND name = $2 AND seq = $3", job, name, seq).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if bytes.Contains(append(tail, data...), needle) {
			return true, nil
		}
		k := min(len(needle)-1, len(data))
		tail = append(tail[:0], data[len(data)-k:]...)
	}
}
