package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuUse samples the CPU time of this process and of the local database and broker servers,
// so a scenario can say how busy the machine was: at 1,000 msgs/s on two cores the latency is
// mostly waiting for a core, and the numbers show it. Servers on other hosts (or a system
// without /proc) are simply not counted.
type cpuUse struct {
	start   time.Time
	self    time.Duration
	procs   []trackedProc
	machine machineTicks // all cores, from /proc/stat; zero when it cannot be read
}

// trackedProc is one process counted under a display name (MariaDB, RabbitMQ, relay). Every
// process of a name is counted and summed: after a restart the old server may linger as a
// zombie next to the new one, and picking one of the two could miss the live one.
type trackedProc struct {
	name string
	pid  int
	from time.Duration // its CPU time when tracking began
}

// serverProcesses maps process names (as in /proc/PID/comm) to what the note calls them.
var serverProcesses = map[string]string{"mariadbd": "MariaDB", "mysqld": "MySQL", "beam.smp": "RabbitMQ"}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux platform Go
// supports.
const clockTicks = 100

func startCPUUse() *cpuUse {
	u := &cpuUse{start: time.Now(), self: selfCPU(), machine: readMachineTicks()}
	found := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil {
			continue
		}
		if name, ok := serverProcesses[strings.TrimSpace(string(comm))]; ok {
			found[name] = append(found[name], pid)
		}
	}
	for _, name := range []string{"MariaDB", "MySQL", "RabbitMQ"} {
		for _, pid := range found[name] {
			u.track(name, pid)
		}
	}
	return u
}

// track counts process pid's CPU from now on under name (a relay child process, say). The
// summary counts it only while it still exists, so take it before the process is reaped.
func (u *cpuUse) track(name string, pid int) {
	if t, ok := procCPU(pid); ok {
		u.procs = append(u.procs, trackedProc{name: name, pid: pid, from: t})
	}
}

// summary reads like "CPU s: bench 5.0, MariaDB 8.9, RabbitMQ 4.8 of 20.2 (2 cores x 10.1 s),
// machine 93% busy, 45% in the kernel".
func (u *cpuUse) summary() string {
	wall := time.Since(u.start)
	used := map[string]time.Duration{}
	var names []string // in the order they were first tracked
	for _, p := range u.procs {
		t, ok := procCPU(p.pid)
		if !ok {
			continue // gone (a zombie reaped meanwhile); it had nothing more to count
		}
		if _, seen := used[p.name]; !seen {
			names = append(names, p.name)
		}
		used[p.name] += t - p.from
	}
	parts := []string{fmt.Sprintf("bench %.1f", (selfCPU() - u.self).Seconds())}
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", name, used[name].Seconds()))
	}
	cores := runtime.NumCPU()
	out := fmt.Sprintf("CPU s: %s of %.1f (%d cores x %.1f s)", strings.Join(parts, ", "),
		float64(cores)*wall.Seconds(), cores, wall.Seconds())
	if busy, kernel, ok := readMachineTicks().since(u.machine); ok {
		out += fmt.Sprintf(", machine %.0f%% busy, %.0f%% in the kernel", 100*busy, 100*kernel)
	}
	return out
}

// selfCPU is this process's user and system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is process pid's user and system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces: count after it.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 { // utime and stime are fields 14 and 15 of the line, 12 and 13 here
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// machineTicks is the first line of /proc/stat: the time all cores spent in each state since
// boot. Busy and kernel shares of an interval tell a saturated machine (where latency is
// mostly waiting for a core) from an idle one at a glance, whatever ran on it.
type machineTicks struct {
	total, idle, kernel uint64 // idle includes iowait; kernel is system, irq and softirq
}

func readMachineTicks() machineTicks {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTicks{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return parseMachineTicks(line)
}

// parseMachineTicks reads "cpu  user nice system idle iowait irq softirq steal ...": the
// aggregate line; guest times are already inside user and nice, so they are not added again.
func parseMachineTicks(line string) machineTicks {
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return machineTicks{}
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		n, err := strconv.ParseUint(fields[i+1], 10, 64)
		if err != nil {
			return machineTicks{}
		}
		v[i] = n
	}
	var t machineTicks
	for _, n := range v {
		t.total += n
	}
	t.idle = v[3] + v[4]
	t.kernel = v[2] + v[5] + v[6]
	return t
}

// since returns the busy and kernel shares of all cores' time from earlier to t; ok is false
// when either reading failed or no time passed.
func (t machineTicks) since(earlier machineTicks) (busy, kernel float64, ok bool) {
	if earlier.total == 0 || t.total <= earlier.total {
		return 0, 0, false
	}
	total := float64(t.total - earlier.total)
	return 1 - float64(t.idle-earlier.idle)/total, float64(t.kernel-earlier.kernel) / total, true
}
