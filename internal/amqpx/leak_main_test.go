package amqpx

import (
	"testing"

	"go.uber.org/goleak"
)

// After the tests no goroutine they started may be left running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
