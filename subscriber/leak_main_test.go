package subscriber

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it started: after the package's tests no goroutine of a relay,
// connection or timer may be left running (a leak here is one in production, on every restart
// of a part or reconnect).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
