package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
)

func BenchmarkZZExplainLoad(b *testing.B) {
	if os.Getenv("ZZ") == "" {
		b.Skip()
	}
	base := pgtest.BaseDSN(b)
	c, _ := pgx.Connect(context.Background(), base)
	c.Exec(context.Background(), "DROP SCHEMA IF EXISTS vigil_explain CASCADE")
	c.Exec(context.Background(), "CREATE SCHEMA vigil_explain")
	c.Close(context.Background())
	dsn := pgtest.WithSearchPath(base, "vigil_explain")
	s, err := postgres.Open(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	loadObservations(b, s, dsn, "pat_big", 1_000_000)
}
