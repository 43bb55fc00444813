//go:build chaos

package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A frozen server (SIGSTOP, then SIGCONT): connections stay open and take no answer, timers
// and timeouts run out on both sides, and when it continues, what was queued runs late: the
// database executes statements whose clients gave up (a DELETE, a commit), the broker reads
// a flood of held frames and may count the pause as missed heartbeats. A disk stall does
// this to both at once; here one at a time, for 1 to 6 s (past the relays' 2 s leases).

// freezeDatabase freezes the server admin is connected to. It needs the rights dbCrash
// needs: the test runs alone against a server it may signal.
func freezeDatabase(ctx context.Context, admin *sql.DB) error {
	pid, err := databasePID(ctx, admin)
	if err != nil {
		return err
	}
	return freeze(pid, "database server")
}

// freezeBroker freezes the RabbitMQ node the test controls (the one rabbitmqctl reaches),
// as brokerRestart allows.
func freezeBroker() error {
	out, err := rabbitmqctl("eval", "os:getpid().")
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.Trim(strings.TrimSpace(string(out)), `"`))
	if err != nil {
		return fmt.Errorf("the broker's pid from rabbitmqctl eval: %q: %w", out, err)
	}
	return freeze(pid, "broker")
}

// freeze stops pid for 1 to 6 s, then continues it. A run killed meanwhile leaves it stopped;
// scripts/test.sh continues it on its next run.
func freeze(pid int, what string) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop the %s (pid %d): %w", what, pid, err)
	}
	time.Sleep(time.Duration(1000+rand.IntN(5000)) * time.Millisecond) // the fault itself is the pause
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("continue the %s (pid %d): %w", what, pid, err)
	}
	return nil
}
