package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// Two processes with one member id: the heartbeat gives the member row to one instance until
// its heartbeat expires, the other is told who holds it, and neither can renew, release or
// leave with the other's row or leases.
func TestLeaseStoreOneMemberIDTwoInstances(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	ctx := context.Background()
	s, err := outbox.NewLeaseStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	// The member row and the lease must outlive the dozen round trips below on a loaded machine.
	const g, ttl = "g/2", 3 * time.Second
	if err := s.EnsurePartitions(ctx, g, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Join(ctx, g, "same", "a", ttl); err != nil {
		t.Fatalf("first instance: %v", err)
	}
	if err := s.Join(ctx, g, "same", "a", ttl); err != nil {
		t.Fatalf("first instance again: %v", err)
	}
	err = s.Join(ctx, g, "same", "b", time.Minute)
	var inUse *outbox.MemberInUseError
	if !errors.As(err, &inUse) || !errors.Is(err, outbox.ErrMemberInUse) {
		t.Fatalf("second instance joined: %v; want a MemberInUseError", err)
	}
	if inUse.Holder != "a" || inUse.ExpiresIn <= 0 || inUse.ExpiresIn > ttl {
		t.Errorf("refusal says holder %q, expires in %s; want a, within %s", inUse.Holder, inUse.ExpiresIn, ttl)
	}
	if n, _ := s.LiveMembers(ctx, g); n != 1 {
		t.Errorf("live members = %d, want 1", n)
	}
	// The stored expiry changes only when the holder heartbeats.
	first := inUse.HeldUntil
	time.Sleep(10 * time.Millisecond)
	if err := s.Join(ctx, g, "same", "b", time.Minute); !errors.As(err, &inUse) || inUse.HeldUntil != first {
		t.Errorf("a second refusal without a heartbeat of a: %v, held until %d; want %d", err, inUse.HeldUntil, first)
	}
	if err := s.Join(ctx, g, "same", "a", ttl); err != nil {
		t.Fatal(err)
	}
	if err := s.Join(ctx, g, "same", "b", time.Minute); !errors.As(err, &inUse) || inUse.HeldUntil <= first {
		t.Errorf("a refusal after a heartbeat of a: %v, held until %d; want later than %d", err, inUse.HeldUntil, first)
	}

	tok, ok, err := s.Acquire(ctx, g, "same", "a", 0, ttl)
	if err != nil || !ok {
		t.Fatalf("a acquire 0: %v, %v", ok, err)
	}
	if held, _ := s.Renew(ctx, g, "same", "b", time.Minute); len(held) != 0 {
		t.Errorf("b renewed %v, leases of instance a", held)
	}
	if err := s.Release(ctx, g, "same", "b", []int{0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Leave(ctx, g, "same", "b"); err != nil {
		t.Fatal(err)
	}
	// A lease renewed for longer than the member row's heartbeat: it outlives the row.
	if held, _ := s.Renew(ctx, g, "same", "a", 2*ttl); held[0] != tok {
		t.Errorf("a holds %v after b released and left, want {0: %d}", held, tok)
	}
	if n, _ := s.LiveMembers(ctx, g); n != 1 {
		t.Errorf("b's Leave removed a's membership: live members = %d", n)
	}

	// a stops heartbeating (a crash): once its row expired, b takes it over, and a is refused.
	testenv.Eventually(t, 2*ttl+5*time.Second, func() (bool, string) {
		err := s.Join(ctx, g, "same", "b", time.Minute)
		return err == nil, fmt.Sprintf("b could not take the expired member row: %v", err)
	})
	if err := s.Join(ctx, g, "same", "a", ttl); !errors.As(err, &inUse) || inUse.Holder != "b" {
		t.Errorf("a's late heartbeat: %v; want refused, held by b", err)
	}
	if held, _ := s.Renew(ctx, g, "same", "b", time.Minute); len(held) != 0 {
		t.Errorf("b renewed %v: the lease of instance a", held)
	}
	// b gets the partition only once the lease itself expired, with the next token.
	var tok2 uint64
	testenv.Eventually(t, 2*ttl+5*time.Second, func() (bool, string) {
		var ok bool
		var err error
		tok2, ok, err = s.Acquire(ctx, g, "same", "b", 0, time.Minute)
		return ok, fmt.Sprintf("b could not acquire the expired partition 0: %v", err)
	})
	if tok2 != tok+1 {
		t.Errorf("b acquired partition 0 with token %d, want %d", tok2, tok+1)
	}
}

// A relay from before instance ids heartbeats without naming one; it keeps working next to
// new relays, and a new relay does not take its member id while it lives.
func TestLeaseStoreHeartbeatOfARelayWithoutInstance(t *testing.T) {
	t.Parallel()
	db := newStoreDB(t)
	ctx := context.Background()
	s, err := outbox.NewLeaseStore(db.DB, outbox.Tables{})
	if err != nil {
		t.Fatal(err)
	}
	oldJoin := func(member string) {
		t.Helper()
		// The statement of version 1.
		if _, err := db.DB.Exec(`INSERT INTO syncworker_relay_members (lease_group, member, expires_at)
VALUES (?, ?, NOW(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE expires_at = NOW(6) + INTERVAL ? MICROSECOND`, "g", member, 60_000_000, 60_000_000); err != nil {
			t.Fatalf("old heartbeat: %v", err)
		}
	}
	oldJoin("old")
	oldJoin("old")
	if err := s.Join(ctx, "g", "new", "n", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.LiveMembers(ctx, "g"); n != 2 {
		t.Errorf("live members = %d, want 2", n)
	}
	var inUse *outbox.MemberInUseError
	if err := s.Join(ctx, "g", "old", "n2", time.Minute); !errors.As(err, &inUse) || inUse.Holder != "" {
		t.Errorf("a new relay joined with the member id of a live old one: %v", err)
	}
}
