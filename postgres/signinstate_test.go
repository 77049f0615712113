package postgres_test

import (
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/postgres"
	"github.com/vigil-health/vigil/postgres/pgtest"
	"github.com/vigil-health/vigil/storetest"
)

func TestSignInFailureStore(t *testing.T) {
	storetest.RunSignInFailures(t, func(t *testing.T) vigil.SignInFailureStore {
		s, err := postgres.Open(t.Context(), pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
