package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-health/vigil"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// CheckNotInUse returns an error with code EUNAVAILABLE if the database file
// at path is open in another connection, of this process or another (a
// running server keeps it open), and nil if it is not or the file does not
// exist. Tools that must not run beside a server (recovery, restore) call it
// before Open. It waits up to wait for the file to be free, so that a
// connection closing at the same moment does not count.
//
// The answer holds at the moment of the call only: a server may open the
// file right after.
func CheckNotInUse(ctx context.Context, path string, wait time.Duration) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("check database in use: %w", err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("check database in use: %w", err)
	}
	// In WAL mode every open connection holds a shared lock on the database
	// file. A connection in exclusive locking mode must take an exclusive
	// lock before its first read, which fails while any other is open.
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(wait.Milliseconds()))
	q.Add("_pragma", "locking_mode(EXCLUSIVE)")
	q.Set("_query_only", "on")
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}).String())
	if err != nil {
		return fmt.Errorf("check database %s in use: %w", abs, err)
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
	if IsBusy(err) {
		return &vigil.Error{Code: vigil.EUNAVAILABLE, Message: "the database " + abs + " is in use by another process", Err: err}
	}
	if err != nil {
		return fmt.Errorf("check database %s in use: %w", abs, err)
	}
	return nil
}

// IsBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED (in
// any extended form): the database was locked by another connection for
// longer than the busy timeout.
func IsBusy(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}
