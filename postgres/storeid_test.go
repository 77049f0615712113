package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/vigil-health/vigil/postgres/pgtest"
)

// TestStoreIdentity: two stores of one schema have one identity; a store of
// another schema of the same database has another.
func TestStoreIdentity(t *testing.T) {
	ctx := context.Background()
	identity := func(dsn string) string {
		t.Helper()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		id, err := s.StoreIdentity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	dsn := pgtest.DSN(t)
	a, again, other := identity(dsn), identity(dsn), identity(pgtest.DSN(t))
	if !strings.HasPrefix(a, "postgres:") || strings.Count(a, "/") != 2 || strings.Contains(a, "password") {
		t.Errorf("identity %q: want postgres:CLUSTER/DATABASE/SCHEMA", a)
	}
	if a != again {
		t.Errorf("two stores of one schema: %q and %q", a, again)
	}
	if a == other {
		t.Errorf("stores of two schemas have one identity %q", a)
	}
}
