package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"strings"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// connector opens connections to one database file with the SQLite C
// library (github.com/mattn/go-sqlite3), and runs on each new connection
// the pragmas its data source name asks for with _pragma parameters, which
// that driver does not read itself.
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

func (c *connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c *connector) Driver() driver.Driver                        { return c.driver }

// openDB returns a database handle for the data source name dsn: a file:
// URI whose parameters are SQLite's, the driver's (_busy_timeout,
// _foreign_keys, _synchronous, _txlock, _query_only, _locking_mode, …),
// and any number of _pragma=name(value), run in order on each connection.
func openDB(dsn string) (*sql.DB, error) {
	base, query, _ := strings.Cut(dsn, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("parse data source name: %w", err)
	}
	pragmas := q["_pragma"]
	q.Del("_pragma")
	if len(q) > 0 {
		base += "?" + q.Encode()
	}
	d := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range pragmas {
			if _, err := c.Exec("PRAGMA "+p, nil); err != nil {
				return fmt.Errorf("pragma %s: %w", p, err)
			}
		}
		return nil
	}}
	return sql.OpenDB(&connector{dsn: base, driver: d}), nil
}
