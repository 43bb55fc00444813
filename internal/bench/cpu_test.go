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

func TestMachineTicksGiveBusyAndKernelShares(t *testing.T) {
	before := parseMachineTicks("cpu  1000 0 500 8000 100 0 50 0 0 0")
	// 1,000 ticks later: user +300, system +150, idle +400, iowait +100, softirq +50.
	after := parseMachineTicks("cpu  1300 0 650 8400 200 0 100 0 0 0")
	busy, kernel, ok := after.since(before)
	if !ok || busy != 0.5 || kernel != 0.2 {
		t.Errorf("busy %v, kernel %v, ok %v; want 0.5, 0.2, true", busy, kernel, ok)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if got := parseMachineTicks(bad); got != (machineTicks{}) {
			t.Errorf("parseMachineTicks(%q) = %+v; want zero", bad, got)
		}
	}
	if _, _, ok := after.since(machineTicks{}); ok {
		t.Error("since an unreadable start gave a share")
	}
	if live := readMachineTicks(); live.total == 0 {
		t.Error("cannot read /proc/stat; the bench needs /proc (Linux) for its CPU figures")
	}
}
