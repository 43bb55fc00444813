package subscriber

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// Err tells a caller without a logger why the subscriber is not consuming: a queue that does
// not exist, credentials the broker refuses (without the password); nil once it consumes.
func TestErrSaysWhyTheSubscriberIsNotConsuming(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	handler := func(context.Context, *sql.Tx, Message) error { return nil }

	cfg := f.config(handler)
	cfg.Queue = f.broker.Name("not-declared-yet")
	s, stop := f.start(f.db.DB, cfg)
	defer stop()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		err := s.Err()
		return err != nil && strings.Contains(err.Error(), "NOT_FOUND") && !s.Consuming(), fmt.Sprintf("Err() = %v", err)
	})
	declareQueue(t, f.broker, f.exchange, cfg.Queue, f.delays)
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return s.Consuming() && s.Err() == nil, fmt.Sprintf("consuming %v, Err() = %v", s.Consuming(), s.Err())
	})

	u, err := url.Parse(f.broker.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password-x7")
	bad := f.config(handler)
	bad.AMQPURL = u.String()
	s2, stop2 := f.start(f.db.DB, bad)
	defer stop2()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		err := s2.Err()
		return err != nil && strings.Contains(err.Error(), "403") && !strings.Contains(err.Error(), "not-the-password-x7"),
			fmt.Sprintf("Err() = %v", err)
	})
}
