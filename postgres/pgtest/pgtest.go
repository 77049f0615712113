// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema in the database named by VIGIL_TEST_POSTGRES, dropped when the
// test ends, so that tests are independent and may run in parallel.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN is the environment variable naming the PostgreSQL database tests
// use (a postgres:// URL). Where it is set, a test that cannot reach the
// database fails; where it is not, tests try DefaultDSN and skip, saying
// why, if nothing answers there.
const EnvDSN = "VIGIL_TEST_POSTGRES"

// DefaultDSN is the database tests try when EnvDSN is not set: the local
// server's database "test", trust authentication.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// BaseDSN returns the DSN of the test database, or skips t (EnvDSN unset
// and nothing at DefaultDSN) or fails it (EnvDSN set but unreachable).
func BaseDSN(t testing.TB) string {
	t.Helper()
	dsn, set := os.LookupEnv(EnvDSN)
	if !set || dsn == "" {
		dsn = DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if set {
			t.Fatalf("%s is set but PostgreSQL cannot be reached: %v", EnvDSN, err)
		}
		t.Skipf("no PostgreSQL at %s (set %s to a postgres:// URL to run this test): %v", DefaultDSN, EnvDSN, err)
	}
	conn.Close(ctx)
	return dsn
}

// DSN returns the DSN of a new, empty schema of the test database (its
// search_path), dropped when t ends. It skips or fails t as BaseDSN does.
func DSN(t testing.TB) string {
	t.Helper()
	base := BaseDSN(t)
	var b [8]byte
	rand.Read(b[:])
	schema := "vigil_test_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(base, schema)
}

// WithSearchPath returns dsn (a postgres:// URL) with its search_path set
// to schema.
func WithSearchPath(dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		return dsn + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
