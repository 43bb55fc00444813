package bench

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// processPeakRSSMB returns VmHWM of process pid in MiB, or nil where /proc is missing.
func processPeakRSSMB(pid int) *float64 {
	return readPeakRSSMB("/proc/" + strconv.Itoa(pid) + "/status")
}

func readPeakRSSMB(path string) *float64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return nil
			}
			return ptr(kb / 1024)
		}
	}
	return nil
}
