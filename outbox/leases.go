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
//
// Member ids are names an operator may choose, and two processes can be given the same one
// (a templated id in a deployment with several replicas). So every relay process also has an
// instance id of its own: membership rows and leases record it, a heartbeat takes a member row
// only if it is its own instance's or has expired, and leases are renewed and released only by
// the instance that holds them.
type LeaseStore struct {
	db *sql.DB

	join, joined, leave, members, ensure, renew, held, claimable, acquire, releaseHead string
}

// ErrMemberInUse says that another live relay process (instance) holds the member id.
var ErrMemberInUse = errors.New("member id is in use by another relay instance")

// MemberInUseError is Join's refusal: the member row belongs to another instance whose
// heartbeat has not expired. errors.Is(err, ErrMemberInUse) holds.
type MemberInUseError struct {
	Group, Member string
	Holder        string        // the instance that holds the member id ('' for a relay from before instances)
	ExpiresIn     time.Duration // until the holder's heartbeat expires unless it is renewed
	// HeldUntil is the holder's expiry as the database stores it (its clock, in microseconds
	// since 2000-01-01): it changes only when the holder heartbeats, so two refusals tell a
	// running holder from a dead one whatever the time the statements took.
	HeldUntil int64
}

func (e *MemberInUseError) Error() string {
	return fmt.Sprintf("outbox: relay member id %q of group %s is held by instance %q for another %s",
		e.Member, e.Group, e.Holder, e.ExpiresIn.Round(time.Millisecond))
}

func (e *MemberInUseError) Is(target error) bool { return target == ErrMemberInUse }

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
		// One statement decides: the row is taken (instance set, expiry extended) only if it is
		// this instance's or has expired. Both assignments test the same condition on values
		// that make it true after either one ran, so the result does not depend on whether
		// the server assigns left to right (MySQL) or simultaneously (MariaDB's
		// SIMULTANEOUS_ASSIGNMENT mode). Values are passed twice, not VALUES(col): MySQL
		// deprecates that.
		join: tables.expand(`INSERT INTO {relay_members} (lease_group, member, instance, expires_at)
VALUES (?, ?, ?, NOW(6) + INTERVAL ? MICROSECOND)
ON DUPLICATE KEY UPDATE
  instance = IF(instance = ? OR expires_at <= NOW(6), ?, instance),
  expires_at = IF(instance = ? OR expires_at <= NOW(6), NOW(6) + INTERVAL ? MICROSECOND, expires_at)`),
		// Which instance holds the row after the heartbeat. The affected-rows count cannot say:
		// it depends on the client's CLIENT_FOUND_ROWS flag, which is the user's DSN setting.
		joined: tables.expand(`SELECT instance, TIMESTAMPDIFF(MICROSECOND, NOW(6), expires_at),
  TIMESTAMPDIFF(MICROSECOND, '2000-01-01', expires_at) FROM {relay_members}
WHERE lease_group = ? AND member = ?`),
		leave:   tables.expand("DELETE FROM {relay_members} WHERE lease_group = ? AND member = ? AND instance = ?"),
		members: tables.expand("SELECT lease_group, COUNT(*) FROM {relay_members} WHERE expires_at > NOW(6) GROUP BY lease_group"),
		ensure:  tables.expand(`INSERT IGNORE INTO {relay_leases} (lease_group, partition_no, owner, token, expires_at) VALUES `),
		renew: tables.expand(`UPDATE {relay_leases} SET expires_at = NOW(6) + INTERVAL ? MICROSECOND
WHERE lease_group = ? AND owner = ? AND instance = ? AND expires_at > NOW(6)`),
		held: tables.expand(`SELECT partition_no, token FROM {relay_leases}
WHERE lease_group = ? AND owner = ? AND instance = ? AND expires_at > NOW(6)`),
		claimable: tables.expand(`SELECT partition_no FROM {relay_leases}
WHERE lease_group = ? AND partition_no < ? AND (owner = '' OR expires_at <= NOW(6)) ORDER BY partition_no`),
		acquire: tables.expand(`UPDATE {relay_leases}
SET owner = ?, instance = ?, token = LAST_INSERT_ID(token + 1), expires_at = NOW(6) + INTERVAL ? MICROSECOND
WHERE lease_group = ? AND partition_no = ? AND (owner = '' OR expires_at <= NOW(6))`),
		releaseHead: tables.expand(`UPDATE {relay_leases} SET owner = '', instance = '', expires_at = NOW(6)
WHERE lease_group = ? AND owner = ? AND instance = ? AND partition_no IN `),
	}, nil
}

// Join records member as alive in group for ttl, as instance (call it again to stay alive).
// When another instance holds member and its heartbeat has not expired, Join changes nothing
// and returns a *MemberInUseError; it takes the member over once that heartbeat expired.
func (s *LeaseStore) Join(ctx context.Context, group, member, instance string, ttl time.Duration) error {
	us := ttl.Microseconds()
	if _, err := s.db.ExecContext(ctx, s.join, group, member, instance, us, instance, instance, instance, us); err != nil {
		return fmt.Errorf("outbox: relay %s heartbeat: %w", member, err)
	}
	var holder string
	var left, heldUntil int64
	switch err := s.db.QueryRowContext(ctx, s.joined, group, member).Scan(&holder, &left, &heldUntil); {
	case errors.Is(err, sql.ErrNoRows):
		// The holder left between the two statements; the next heartbeat takes the row.
		return &MemberInUseError{Group: group, Member: member}
	case err != nil:
		return fmt.Errorf("outbox: relay %s heartbeat: read the member row: %w", member, err)
	case holder != instance:
		return &MemberInUseError{Group: group, Member: member, Holder: holder,
			ExpiresIn: time.Duration(max(left, 0)) * time.Microsecond, HeldUntil: heldUntil}
	}
	return nil
}

// Leave removes member from group at once, so the others rebalance without waiting for expiry.
// It removes only instance's row: a relay that never got the member id leaves the holder alone.
func (s *LeaseStore) Leave(ctx context.Context, group, member, instance string) error {
	if _, err := s.db.ExecContext(ctx, s.leave, group, member, instance); err != nil {
		return fmt.Errorf("outbox: relay %s leave: %w", member, err)
	}
	return nil
}

// LiveMembers counts the members of group whose heartbeat has not expired.
func (s *LeaseStore) LiveMembers(ctx context.Context, group string) (int, error) {
	groups, err := s.LiveGroups(ctx)
	return groups[group], err
}

// LiveGroups counts the members whose heartbeat has not expired, by lease group. Relays of two
// groups on one outbox (another relay.group, or another partition count: the lease group is
// "group/partitions") each publish every row.
func (s *LeaseStore) LiveGroups(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, s.members)
	if err != nil {
		return nil, fmt.Errorf("outbox: count live relays: %w", err)
	}
	defer rows.Close()
	groups := map[string]int{}
	for rows.Next() {
		var group string
		var n int
		if err := rows.Scan(&group, &n); err != nil {
			return nil, fmt.Errorf("outbox: count live relays: %w", err)
		}
		groups[group] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: count live relays: %w", err)
	}
	return groups, nil
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

// Renew extends every unexpired lease member's instance holds in group to ttl from now and
// returns them as partition -> token. Leases that had already expired are not renewed and not
// returned: another relay may own them by now. Leases of another instance with the same member
// id (a previous run, or a second process given the same id) are not touched.
func (s *LeaseStore) Renew(ctx context.Context, group, member, instance string, ttl time.Duration) (map[int]uint64, error) {
	if _, err := s.db.ExecContext(ctx, s.renew, ttl.Microseconds(), group, member, instance); err != nil {
		return nil, fmt.Errorf("outbox: renew leases: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, s.held, group, member, instance)
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

// Acquire takes partition for member's instance if it is free or expired, returning its new
// token. ok is false when another relay holds it.
func (s *LeaseStore) Acquire(ctx context.Context, group, member, instance string, partition int, ttl time.Duration) (token uint64, ok bool, err error) {
	res, err := s.db.ExecContext(ctx, s.acquire, member, instance, ttl.Microseconds(), group, partition)
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

// Release gives up the leases member's instance holds on partitions so others can take them
// at once.
func (s *LeaseStore) Release(ctx context.Context, group, member, instance string, partitions []int) error {
	if len(partitions) == 0 {
		return nil
	}
	ids := make([]int64, len(partitions))
	for i, p := range partitions {
		ids[i] = int64(p)
	}
	q, args := inList(s.releaseHead, ids, group, member, instance)
	if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("outbox: release %d partitions: %w", len(partitions), err)
	}
	return nil
}
