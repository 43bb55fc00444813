package outbox_test

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/syncworker/syncworker/internal/testenv"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The runnable Example needs the database; with integration tests switched off explicitly
	// it is skipped like them instead of failing.
	if os.Getenv(testenv.EnvSkip) == "1" {
		flag.Set("test.skip", "^Example")
	}
	goleak.VerifyTestMain(m) // runs the tests; fails them if a goroutine (an open *sql.DB's) is left
}
