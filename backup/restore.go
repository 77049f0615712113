package backup

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/sqlite"
)

// maxManifest bounds the manifest's size (it lists every file).
const maxManifest = 64 << 20

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Progress receives one line per part restored; nil discards them.
	Progress io.Writer
}

// Restore restores the backup read from r (a tar stream, gzip-compressed
// or not) into the data directory dir, which must be empty or not exist,
// and returns its manifest.
//
// Every file is checked against the manifest (size and SHA-256); the
// archive must hold exactly the manifest's files, only regular files and
// directories, with relative paths inside dir. Files are written 0600 and
// directories 0700, and synced. On any error — ECONFLICT for a non-empty
// dir, EINVALID for an archive that is not a complete Vigil backup or was
// taken by a newer schema than this build's — what was restored is removed
// again, and dir is left as it was.
func Restore(ctx context.Context, r io.Reader, dir string, opts RestoreOptions) (_ *Manifest, err error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	say := func(format string, args ...any) { fmt.Fprintf(progress, "restore: "+format+"\n", args...) }
	start := time.Now()

	created := false
	switch des, err := os.ReadDir(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		created = true
	case err != nil:
		return nil, fmt.Errorf("restore: %w", err)
	case len(des) > 0:
		return nil, vigil.Errorf(vigil.ECONFLICT, "restore: %s is not empty: restore only into an empty directory", dir)
	}
	defer func() {
		if err == nil {
			return
		}
		if created {
			os.RemoveAll(dir)
			return
		}
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			os.RemoveAll(filepath.Join(dir, de.Name()))
		}
	}()

	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, invalid("read gzip header: %v", err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	got := map[string]File{}
	var order []string
	var dirs []string
	var m *Manifest
	var total int64
	// One progress line per part (top-level entry) once it is written.
	part, partFiles, partBytes := "", 0, int64(0)
	endPart := func(next string) {
		if part != "" && next != part {
			say("%s: %d files, %s", part, partFiles, size(partBytes))
		}
		if next != part {
			part, partFiles, partBytes = next, 0, 0
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalid("read archive: %v", err)
		}
		if m != nil {
			return nil, invalid("%s follows the manifest", h.Name)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(name) || path.Clean(name) != name || strings.Contains(name, `\`) {
			return nil, invalid("unsafe path %q", h.Name)
		}
		top, _, _ := strings.Cut(name, "/")
		endPart(top)
		switch {
		case h.Typeflag == tar.TypeReg && name == ManifestName:
			b, err := io.ReadAll(io.LimitReader(tr, maxManifest+1))
			if err != nil {
				return nil, invalid("read manifest: %v", err)
			}
			if len(b) > maxManifest {
				return nil, invalid("manifest longer than %d bytes", maxManifest)
			}
			m = &Manifest{}
			if err := json.Unmarshal(b, m); err != nil {
				return nil, invalid("decode manifest: %v", err)
			}
		case h.Typeflag == tar.TypeDir:
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(p, 0o700); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
			dirs = append(dirs, p)
		case h.Typeflag == tar.TypeReg:
			if _, dup := got[name]; dup {
				return nil, invalid("%s twice", name)
			}
			f, err := restoreFile(tr, dir, name)
			if err != nil {
				return nil, err
			}
			got[name] = f
			order = append(order, name)
			total += f.Size
			partFiles++
			partBytes += f.Size
		default:
			return nil, invalid("%s is not a regular file or directory", h.Name)
		}
	}
	if m == nil {
		return nil, invalid("no %s: the archive is incomplete or not a Vigil backup", ManifestName)
	}
	if m.Format != Format {
		return nil, invalid("format %q, want %q", m.Format, Format)
	}
	for db, v := range m.Schemas {
		if v > sqlite.SchemaVersion() {
			return nil, invalid("%s has schema version %d, newer than this vigil's %d: restore with vigil %s or newer", db, v, sqlite.SchemaVersion(), m.Version)
		}
	}
	if len(m.Files) != len(got) {
		return nil, invalid("the archive holds %d files, its manifest lists %d", len(got), len(m.Files))
	}
	for _, want := range m.Files {
		f, ok := got[want.Path]
		switch {
		case !ok:
			return nil, invalid("%s is in the manifest, not in the archive", want.Path)
		case f != want:
			return nil, invalid("%s: %d bytes, SHA-256 %s; the manifest says %d bytes, %s", want.Path, f.Size, f.SHA256, want.Size, want.SHA256)
		}
	}
	for _, db := range Databases {
		if _, ok := got[db]; !ok {
			return nil, invalid("no %s in the backup", db)
		}
	}
	// Make the directory entries durable, deepest first.
	slices.SortFunc(dirs, func(a, b string) int {
		return strings.Count(b, string(filepath.Separator)) - strings.Count(a, string(filepath.Separator))
	})
	for _, d := range append(dirs, dir) {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	say("%d files, %s, checked against the manifest (backup of %s by vigil %s) in %s",
		len(order), size(total), m.Created.Format(time.RFC3339), m.Version, time.Since(start).Round(time.Millisecond))
	return m, nil
}

// restoreFile writes the archive's current file to dir/name, synced, and
// returns its size and hash.
func restoreFile(r io.Reader, dir, name string) (File, error) {
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return File{}, fmt.Errorf("restore: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return File{}, invalid("read %s: %v", name, err)
	}
	if err := f.Sync(); err != nil {
		return File{}, fmt.Errorf("restore: sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return File{}, fmt.Errorf("restore: %w", err)
	}
	return File{Path: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func invalid(format string, args ...any) error {
	return vigil.Errorf(vigil.EINVALID, "restore: "+format, args...)
}
