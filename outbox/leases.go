package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// LeaseStore holds the SQL of the relay's partition leases and membership. Every expiry is
// computed by the database clock (NOW(6)), so relays on machines with skewed clocks agree.
//
// A lease row says which member owns a partition until when; its token grows by one each time
// the partition changes hands, so a relay can tell "still mine" from "lost and got back".
type LeaseStore struct {
	db *sql.DB

	join, leave, members, ensure, renew, held, claimable, acquire, releaseHead string
}

// NewLeaseStore returns the lease queries on db for the given table names.
func NewLeaseStore(db *sql.DB, tables Tables) (*LeaseStore, error) {
	if db == nil {
		return nil, errors.New("outbox: lease store: db is nil")
	}
	tables = tables.WithDefaults()
	if err := tables.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: lease store: %w", err)
	}
	return &LeaseStore{
		db: db,
		join: tables.expand(`INSERT INTO {relay_members} (lease_group, member, expires_at)
VALUES (?, ?, NOW(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE expires_at = NOW(6) + INTERVAL ? MICROSECOND`), // not VALUES(): MySQL deprecates it
		leave:   tables.expand("DELETE FROM {relay_members} WHERE lease_group = ? AND member = ?"),
		members: tables.expand("SELECT COUNT(*) FROM {relay_members} WHERE lease_group = ? AND expires_at > NOW(6)"),
		ensure:  tables.expand(`INSERT IGNORE INTO {relay_leases} (lease_group, partition_no, owner, token, expires_at) VALUES `),
		renew: tables.expand(`UPDATE {relay_leases} SET expires_at = NOW(6) + INTERVAL ? MICROSECOND
WHERE lease_group = ? AND owner = ? AND expires_at > NOW(6)`),
		held: tables.expand(`SELECT partition_no, token FROM {relay_leases}
WHERE lease_group = ? AND owner = ? AND expires_at > NOW(6)`),
		claimable: tables.expand(`SELECT partition_no FROM {relay_leases}
WHERE lease_group = ? AND partition_no < ? AND (owner = '' OR expires_at <= NOW(6)) ORDER BY partition_no`),
		acquire: tables.expand(`UPDATE {relay_leases}
SET owner = ?, token = LAST_INSERT_ID(token + 1), expires_at = NOW(6) + INTERVAL ? MICROSECOND
WHERE lease_group = ? AND partition_no = ? AND (owner = '' OR expires_at <= NOW(6))`),
		releaseHead: tables.expand(`UPDATE {relay_leases} SET owner = '', expires_at = NOW(6)
WHERE lease_group = ? AND owner = ? AND partition_no IN `),
	}, nil
}

// Join records member as alive in group for ttl (call it again to stay alive).
func (s *LeaseStore) Join(ctx context.Context, group, member string, ttl time.Duration) error {
	if _, err := s.db.ExecContext(ctx, s.join, group, member, ttl.Microseconds(), ttl.Microseconds()); err != nil {
		return fmt.Errorf("outbox: relay %s heartbeat: %w", member, err)
	}
	return nil
}

// Leave removes member from group at once, so the others rebalance without waiting for expiry.
func (s *LeaseStore) Leave(ctx context.Context, group, member string) error {
	if _, err := s.db.ExecContext(ctx, s.leave, group, member); err != nil {
		return fmt.Errorf("outbox: relay %s leave: %w", member, err)
	}
	return nil
}

// LiveMembers counts the members of group whose heartbeat has not expired.
func (s *LeaseStore) LiveMembers(ctx context.Context, group string) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, s.members, group).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox: count live relays: %w", err)
	}
	return n, nil
}

// EnsurePartitions creates the lease rows 0..count-1 of group that do not exist yet, in one
// statement.
func (s *LeaseStore) EnsurePartitions(ctx context.Context, group string, count int) error {
	if count <= 0 {
		return nil
	}
	q := s.ensure + strings.TrimSuffix(strings.Repeat("(?, ?, '', 0, NOW(6)),", count), ",")
	args := make([]any, 0, 2*count)
	for p := 0; p < count; p++ {
		args = append(args, group, p)
	}
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("outbox: create %d lease rows: %w", count, err)
	}
	return nil
}

// Renew extends every unexpired lease member holds in group to ttl from now and returns them
// as partition -> token. Leases that had already expired are not renewed and not returned:
// another relay may own them by now.
func (s *LeaseStore) Renew(ctx context.Context, group, member string, ttl time.Duration) (map[int]uint64, error) {
	if _, err := s.db.ExecContext(ctx, s.renew, ttl.Microseconds(), group, member); err != nil {
		return nil, fmt.Errorf("outbox: renew leases: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.held, group, member)
	if err != nil {
		return nil, fmt.Errorf("outbox: read held leases: %w", err)
	}
	defer rows.Close()
	held := map[int]uint64{}
	for rows.Next() {
		var p int
		var token uint64
		if err := rows.Scan(&p, &token); err != nil {
			return nil, fmt.Errorf("outbox: read held leases: %w", err)
		}
		held[p] = token
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read held leases: %w", err)
	}
	return held, nil
}

// Claimable lists the partitions below count that nobody holds (free or expired).
func (s *LeaseStore) Claimable(ctx context.Context, group string, count int) ([]int, error) {
	rows, err := s.db.QueryContext(ctx, s.claimable, group, count)
	if err != nil {
		return nil, fmt.Errorf("outbox: list claimable partitions: %w", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("outbox: list claimable partitions: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Acquire takes partition for member if it is free or expired, returning its new token.
// ok is false when another member holds it.
func (s *LeaseStore) Acquire(ctx context.Context, group, member string, partition int, ttl time.Duration) (token uint64, ok bool, err error) {
	res, err := s.db.ExecContext(ctx, s.acquire, member, ttl.Microseconds(), group, partition)
	if err != nil {
		return 0, false, fmt.Errorf("outbox: acquire partition %d: %w", partition, err)
	}
	n, err := res.RowsAffected()
	if err != nil || n != 1 {
		return 0, false, err
	}
	// LAST_INSERT_ID(expr) in the UPDATE hands the new token back in the same statement.
	id, err := res.LastInsertId()
	if err != nil {
		return 0, false, fmt.Errorf("outbox: acquire partition %d: read token: %w", partition, err)
	}
	return uint64(id), true, nil
}

// Release gives up member's leases on partitions so others can take them at once.
func (s *LeaseStore) Release(ctx context.Context, group, member string, partitions []int) error {
	if len(partitions) == 0 {
		return nil
	}
	ids := make([]int64, len(partitions))
	for i, p := range partitions {
		ids[i] = int64(p)
	}
	q, args := inList(s.releaseHead, ids, group, member)
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("outbox: release %d partitions: %w", len(partitions), err)
	}
	return nil
}
