package bench

import (
	"fmt"
	"os"
	"os/exec"
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

func TestCPUUseSumsProcessesOfANameAndSkipsGoneOnes(t *testing.T) {
	u := &cpuUse{start: time.Now(), self: selfCPU()}
	// This process twice under one name: a restarted server and its lingering predecessor
	// both count, so the sum is twice what one of them used.
	u.track("twice", os.Getpid())
	u.track("twice", os.Getpid())
	gone := exec.Command("sleep", "10")
	if err := gone.Start(); err != nil {
		t.Fatal(err)
	}
	u.track("gone", gone.Process.Pid)
	gone.Process.Kill() //nolint:errcheck // Wait reports it
	gone.Wait()         //nolint:errcheck // killed on purpose; reaped now, so /proc forgets it

	// Spin until this process used 200 ms of CPU (not of wall time: on a busy machine the
	// spinning goroutine gets only part of a core).
	for selfCPU()-u.self < 200*time.Millisecond {
	}
	s := u.summary()
	i := strings.Index(s, "twice ")
	if i < 0 {
		t.Fatalf("summary %q does not count the tracked processes", s)
	}
	var twice float64
	if _, err := fmt.Sscanf(s[i:], "twice %f", &twice); err != nil {
		t.Fatalf("summary %q: %v", s, err)
	}
	// 200 ms of CPU, counted twice, in 10 ms ticks.
	if twice < 0.35 || twice > 0.6 {
		t.Errorf("twice = %.1f s in %q, want about 0.4", twice, s)
	}
	if strings.Contains(s, "gone") {
		t.Errorf("summary %q counts a process that no longer exists", s)
	}
}
