// Package testenv gives integration tests fresh, isolated resources on the real MariaDB/MySQL
// and RabbitMQ: a randomly named database and a random name prefix for broker entities, both
// removed when the test ends.
//
// When a service cannot be reached the test fails with a message saying which one and how to
// start it. Tests skip only when SYNCWORKER_SKIP_INTEGRATION=1 is set explicitly.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"
)

// Environment variables read by this package.
const (
	EnvSkip     = "SYNCWORKER_SKIP_INTEGRATION"
	EnvMySQLDSN = "SYNCWORKER_TEST_MYSQL_DSN"
	EnvAMQPURL  = "SYNCWORKER_TEST_AMQP_URL"
)

// Defaults match a local MariaDB with a password-less root and RabbitMQ's guest account.
const (
	DefaultMySQLDSN = "root@tcp(127.0.0.1:3306)/"
	DefaultAMQPURL  = "amqp://guest:guest@127.0.0.1:5672/"
)

// Integration marks t as an integration test: it skips only when SYNCWORKER_SKIP_INTEGRATION=1.
func Integration(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%s=1: integration test skipped", EnvSkip)
	}
}

// RandomSuffix returns n random lowercase hex characters.
func RandomSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

// Eventually polls cond every few milliseconds until it returns true or timeout passes, then
// fails the test with what the last call of cond reported.
func Eventually(t testing.TB, timeout time.Duration, cond func() (ok bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 2 * time.Millisecond
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, status)
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
