package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestProcCPUReadsThisProcess(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn some CPU so both counters move
	}
	fromProc, ok := procCPU(os.Getpid())
	if !ok {
		t.Fatal("cannot read /proc/self/stat; the bench needs /proc (Linux) for its CPU and RSS figures")
	}
	self := selfCPU()
	if fromProc <= 0 || self <= 0 {
		t.Fatalf("CPU time from /proc %s, from getrusage %s; want both positive", fromProc, self)
	}
	// /proc counts in 10 ms ticks; the two views of the same process agree within that.
	if diff := self - fromProc; diff < -50*time.Millisecond || diff > 50*time.Millisecond {
		t.Errorf("CPU time from /proc %s and from getrusage %s differ by %s", fromProc, self, diff)
	}
	if s := startCPUUse().summary(); !strings.HasPrefix(s, "CPU s: bench ") || !strings.Contains(s, "cores x") {
		t.Errorf("summary %q", s)
	}
}
