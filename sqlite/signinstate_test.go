package sqlite_test

import (
	"testing"

	"github.com/vigil-health/vigil"
	"github.com/vigil-health/vigil/storetest"
)

func TestSignInFailureStore(t *testing.T) {
	storetest.RunSignInFailures(t, func(t *testing.T) vigil.SignInFailureStore { return open(t) })
}
