//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dbCrash: the chaos test SIGKILLs the MariaDB/MySQL server and starts it again, so every
// process loses the database at once, mid-transaction, and the server runs crash recovery. It
// is done only when the test runs alone against a local server it may kill and restart
// (scripts/test.sh sets SYNCWORKER_CHAOS_DB_CRASH=1 as root with a server of its own).
var dbCrash = os.Getenv("SYNCWORKER_CHAOS_DB_CRASH") == "1"

// crashDatabase kills the server admin is connected to with SIGKILL and starts it again as it
// was started (program, arguments, environment, directory), detached, then waits until it
// answers.
func crashDatabase(ctx context.Context, admin *sql.DB) error {
	pid, err := databasePID(ctx, admin)
	if err != nil {
		return err
	}
	// The same program, arguments, environment and working directory as the server had.
	proc := fmt.Sprintf("/proc/%d/", pid)
	exe, err := os.Readlink(proc + "exe")
	if err != nil {
		return fmt.Errorf("read the server's program: %w", err)
	}
	dir, err := os.Readlink(proc + "cwd")
	if err != nil {
		return fmt.Errorf("read the server's working directory: %w", err)
	}
	argv, err := nulSeparated(proc + "cmdline")
	if err != nil {
		return fmt.Errorf("read the server's command line: %w", err)
	}
	environ, err := nulSeparated(proc + "environ")
	if err != nil {
		return fmt.Errorf("read the server's environment: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill the server (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(30 * time.Second); processExists(pid); {
		if time.Now().After(deadline) {
			return fmt.Errorf("server pid %d still there 30s after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond) // waiting for the kernel to reap it; a deadline bounds it
	}
	// A session of its own and its output in a file: the server outlives this test, and must
	// not hold the test binary's output open (go test would wait for it) or write to a pipe
	// nobody reads once the test is over.
	logPath := os.TempDir() + "/syncworker-chaos-dbserver.log"
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := &exec.Cmd{Path: exe, Args: argv, Env: environ, Dir: dir, Stdout: logFile, Stderr: logFile,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the server again (%s): %w", strings.Join(argv, " "), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// A service manager may start the server too; then ours exits (the data directory is
	// locked) and theirs answers. Only silence until the deadline is a failure.
	var exitErr error
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := admin.PingContext(pingCtx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			if exitErr != nil {
				err = fmt.Errorf("%w; the server started again exited: %v (its output: %s)", err, exitErr, logPath)
			}
			return fmt.Errorf("the database server did not answer within 2 minutes of the crash: %w", err)
		}
		select {
		case exitErr = <-exited:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// databasePID returns the process id of the server admin is connected to (its pid file).
func databasePID(ctx context.Context, admin *sql.DB) (int, error) {
	var pidFile string
	if err := admin.QueryRowContext(ctx, "SELECT @@pid_file").Scan(&pidFile); err != nil {
		return 0, fmt.Errorf("find the server's pid file: %w", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, fmt.Errorf("read the server's pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", pidFile, err)
	}
	return pid, nil
}

// nulSeparated reads a /proc file of NUL-terminated strings.
func nulSeparated(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return []string{}, nil // an empty environment, not exec's "inherit ours"
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

func processExists(pid int) bool {
	// A zombie still has its /proc entry; its state is Z until its parent reaps it.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
