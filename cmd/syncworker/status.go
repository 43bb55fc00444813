package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/outbox"
	"github.com/syncworker/syncworker/topology"
)

func init() {
	register(&command{name: "status", summary: "outbox backlog per partition, dead rows, relay leases and queue depths", run: runStatus})
}

// statusReport is what status prints; --json prints it as is.
type statusReport struct {
	Group      string            `json:"group"`
	Partitions []partitionStatus `json:"partitions"`
	Backlog    int64             `json:"backlog"`
	Retrying   int64             `json:"retrying"` // of the backlog, rows waiting for another attempt
	OldestAge  float64           `json:"oldest_age_seconds"`
	Dead       int64             `json:"dead"`
	Leases     []leaseStatus     `json:"leases"`
	Queues     []queueStatus     `json:"queues"`
	Notes      []string          `json:"notes,omitempty"`
}

type partitionStatus struct {
	Partition int     `json:"partition"`
	Pending   int64   `json:"pending"`
	Retrying  int64   `json:"retrying"`           // failed at least once, waiting for the next attempt
	OldestAge float64 `json:"oldest_age_seconds"` // 0 when empty
}

type leaseStatus struct {
	Partition int       `json:"partition"`
	Owner     string    `json:"owner"` // "" when free
	ExpiresAt time.Time `json:"expires_at"`
	Valid     bool      `json:"valid"` // not expired, by the database's clock
}

type queueStatus struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // queue, retry tier, parking lot
	Ready     int64  `json:"ready"`
	Unacked   *int64 `json:"unacked"` // null when unknown (no management API)
	Consumers int    `json:"consumers"`
	Error     string `json:"error,omitempty"` // the queue could not be read (unacked counts' problems are in notes)
}

func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "status", "[--config FILE] [--json] [flags]")
	need := needs{mysql: true}
	b := bindSettings(fs, needs{mysql: true, amqp: true})
	b.str("topology", "topology file whose queues, retry tiers and parking lots are shown (topology.file, env SYNCWORKER_TOPOLOGY_FILE)", func(s *settings) *string { return &s.Topology.File })
	b.str("management-url", "RabbitMQ management API, e.g. http://user:pass@host:15672, for unacked counts (amqp.management_url, env SYNCWORKER_AMQP_MANAGEMENT_URL)", func(s *settings) *string { return &s.AMQP.ManagementURL })
	b.int("partitions", "the relays' partition count, for the per-partition backlog and the leases (relay.partitions; default 16)", func(s *settings) *int { return &s.Relay.Partitions })
	b.str("group", "the relays' group (relay.group, env SYNCWORKER_RELAY_GROUP; default \"default\")", func(s *settings) *string { return &s.Relay.Group })
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	s, env, err := b.parse(env, args, need)
	if err != nil {
		return err
	}
	rep, err := collectStatus(ctx, s)
	if err != nil {
		return redactErr(err, s)
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.format(env.stdout)
}

func collectStatus(ctx context.Context, s *settings) (*statusReport, error) {
	db, err := openDB(s, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if err := pingDB(ctx, db, s); err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, db, s); err != nil {
		return nil, err
	}
	rep := &statusReport{Group: leaseGroup(s), Leases: []leaseStatus{}, Queues: []queueStatus{}}
	if rep.Partitions, err = outboxBacklog(ctx, db, s.Relay.Partitions); err != nil {
		return nil, err
	}
	for _, p := range rep.Partitions {
		rep.Backlog += p.Pending
		rep.Retrying += p.Retrying
		rep.OldestAge = max(rep.OldestAge, p.OldestAge)
	}
	t := outbox.Tables{}.WithDefaults()
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+outbox.QuoteIdentifier(t.Dead)).Scan(&rep.Dead); err != nil {
		return nil, fmt.Errorf("count dead rows: %w", err)
	}
	if rep.Leases, err = readLeases(ctx, db, rep.Group, s.Relay.Partitions); err != nil {
		return nil, err
	}
	if len(rep.Leases) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("no lease rows for group %s: no relay with this group and partition count has run", rep.Group))
	}
	if s.Topology.File == "" {
		rep.Notes = append(rep.Notes, "queue depths not shown: set topology.file or --topology")
		return rep, nil
	}
	if s.AMQP.URL == "" {
		rep.Notes = append(rep.Notes, "queue depths not shown: set amqp.url, SYNCWORKER_AMQP_URL or --amqp-url")
		return rep, nil
	}
	topo, err := topology.Load(s.Topology.File)
	if err != nil {
		return nil, fmt.Errorf("topology.file: %w", err)
	}
	var mgmtErr error
	if rep.Queues, mgmtErr, err = queueDepths(ctx, s, topo); err != nil {
		return nil, err
	}
	switch {
	case s.AMQP.ManagementURL == "":
		rep.Notes = append(rep.Notes, "unacked counts unknown: AMQP reports only ready messages; "+defaultManagementNote)
	case mgmtErr != nil:
		rep.Notes = append(rep.Notes, "unacked counts unknown: "+mgmtErr.Error())
	}
	return rep, nil
}

// outboxBacklog counts pending rows, those of them waiting for a retry, and the oldest row's
// age per partition with one grouped query: partition = partition_hash * count >> 32, as
// outbox.PartitionOf computes it.
func outboxBacklog(ctx context.Context, db *sql.DB, partitions int) ([]partitionStatus, error) {
	t := outbox.Tables{}.WithDefaults()
	rows, err := db.QueryContext(ctx, `SELECT (partition_hash * ?) DIV 4294967296 AS p, COUNT(*),
SUM(next_attempt_at IS NOT NULL), TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) FROM `+
		outbox.QuoteIdentifier(t.Outbox)+` GROUP BY p`, partitions)
	if err != nil {
		return nil, fmt.Errorf("outbox backlog: %w", err)
	}
	defer rows.Close()
	out := make([]partitionStatus, partitions)
	for i := range out {
		out[i].Partition = i
	}
	for rows.Next() {
		var p int
		var n, retrying, ageMicros int64
		if err := rows.Scan(&p, &n, &retrying, &ageMicros); err != nil {
			return nil, fmt.Errorf("outbox backlog: %w", err)
		}
		if p >= 0 && p < partitions {
			out[p].Pending, out[p].Retrying, out[p].OldestAge = n, retrying, max(float64(ageMicros)/1e6, 0)
		}
	}
	return out, rows.Err()
}

// readLeases reads the lease rows of group below partitions.
func readLeases(ctx context.Context, db *sql.DB, group string, partitions int) ([]leaseStatus, error) {
	t := outbox.Tables{}.WithDefaults()
	rows, err := db.QueryContext(ctx, `SELECT partition_no, owner, UNIX_TIMESTAMP(expires_at), expires_at > NOW(6) FROM `+
		outbox.QuoteIdentifier(t.Leases)+` WHERE lease_group = ? AND partition_no < ? ORDER BY partition_no`, group, partitions)
	if err != nil {
		return nil, fmt.Errorf("read relay leases: %w", err)
	}
	defer rows.Close()
	out := []leaseStatus{}
	for rows.Next() {
		var l leaseStatus
		var expires float64
		if err := rows.Scan(&l.Partition, &l.Owner, &expires, &l.Valid); err != nil {
			return nil, fmt.Errorf("read relay leases: %w", err)
		}
		l.ExpiresAt = time.UnixMicro(int64(expires * 1e6)).UTC()
		out = append(out, l)
	}
	return out, rows.Err()
}

// queueDepths reads each topology queue, retry tier and parking lot: ready counts and
// consumers with a passive declare, unacked counts from the management API when configured.
// The management API's first failure is returned apart and ends the asking: an API that does
// not answer would otherwise cost its timeout once per queue.
func queueDepths(ctx context.Context, s *settings, topo *topology.Topology) (_ []queueStatus, mgmtErr, err error) {
	conn, err := dialAMQP(s, "syncworker status")
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	var out []queueStatus
	for _, q := range topo.Queues {
		out = append(out, queueStatus{Name: q.Name, Kind: "queue"})
		for _, tier := range q.RetryTiers() {
			out = append(out, queueStatus{Name: tier.Queue, Kind: "retry " + tier.Delay.String()})
		}
		if lot := q.ParkingLot(); lot != "" {
			out = append(out, queueStatus{Name: lot, Kind: "parking lot"})
		}
	}
	mgmt := newManagementClient(s)
	for i := range out {
		q := &out[i]
		if err := passiveDepth(conn, q); err != nil {
			q.Error = err.Error()
			continue
		}
		if mgmt != nil && mgmtErr == nil {
			if unacked, err := mgmt.unacked(ctx, q.Name); err != nil {
				mgmtErr = err
			} else {
				q.Unacked = &unacked
			}
		}
	}
	return out, mgmtErr, nil
}

// passiveDepth fills q's ready count and consumers; a missing queue closes the channel,
// so each queue gets a channel of its own.
func passiveDepth(conn *amqp.Connection, q *queueStatus) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	st, err := ch.QueueDeclarePassive(q.Name, false, false, false, false, nil)
	if err != nil {
		if e, ok := err.(*amqp.Error); ok && e.Code == amqp.NotFound {
			return fmt.Errorf("does not exist (run syncworker topology apply)")
		}
		return err
	}
	q.Ready, q.Consumers = int64(st.Messages), st.Consumers
	return nil
}

func (r *statusReport) format(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "OUTBOX: %d pending (%d waiting for a retry), oldest %s; relay group %s\n", r.Backlog, r.Retrying,
		age(r.OldestAge), r.Group)
	fmt.Fprintln(tw, "PARTITION\tPENDING\tRETRYING\tOLDEST\tOWNER\tLEASE EXPIRES")
	leases := map[int]leaseStatus{}
	for _, l := range r.Leases {
		leases[l.Partition] = l
	}
	for _, p := range r.Partitions {
		owner, expires := "-", "-"
		if l, ok := leases[p.Partition]; ok && l.Owner != "" {
			owner, expires = l.Owner, l.ExpiresAt.Format(time.RFC3339)
			if !l.Valid {
				expires += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\n", p.Partition, p.Pending, p.Retrying, age(p.OldestAge), owner, expires)
	}
	fmt.Fprintf(tw, "\nDEAD ROWS: %d (see syncworker outbox dead list)\n", r.Dead)
	if len(r.Queues) > 0 {
		fmt.Fprintln(tw, "\nQUEUE\tKIND\tREADY\tUNACKED\tCONSUMERS")
		for _, q := range r.Queues {
			unacked := "unknown"
			if q.Unacked != nil {
				unacked = fmt.Sprint(*q.Unacked)
			}
			if q.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\terror: %s\n", q.Name, q.Kind, q.Error)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", q.Name, q.Kind, q.Ready, unacked, q.Consumers)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "\nnote: %s\n", n)
	}
	return tw.Flush()
}

func age(seconds float64) string {
	if seconds <= 0 {
		return "-"
	}
	return time.Duration(seconds * float64(time.Second)).Round(time.Millisecond).String()
}
