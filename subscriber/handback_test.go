package subscriber

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/naming"
	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/topology"
)

// brokerAtLeast reports whether the test broker's version is major.minor or newer.
func brokerAtLeast(b *testenv.Broker, major, minor int) (bool, string) {
	v, _ := b.Conn.Properties["version"].(string)
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false, v
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(parts[1])
	return ma > major || (ma == major && mi >= minor), v
}

// A graceful stop hands back the deliveries no handler has started on. On RabbitMQ 4 they must
// not count against the queue's delivery limit (20 by default; 2 here): a consumer restarted a
// few times while a backlog waits in its lanes would otherwise have the broker dead-letter
// healthy messages into the parking lot, where they wait for someone to replay them. RabbitMQ
// 4.3 counts a delivery returned by a channel or connection closing, not one nacked with
// requeue. 3.x counts both (the subscriber keeps to the close there), so on 3.x the test runs
// the nack path anyway, without a delivery limit: handing back by nack loses and repeats nothing.
func TestStopsDoNotUseUpTheDeliveryLimit(t *testing.T) {
	t.Parallel()
	f := &fixture{t: t, db: testenv.NewDatabase(t), broker: testenv.NewBroker(t), delays: testDelays}
	limit := int64(2)
	byNack := true
	var forceNack *bool
	if ok, v := brokerAtLeast(f.broker, 4, 3); !ok {
		t.Logf("RabbitMQ %s counts a nack with requeue as a delivery too: no delivery limit, nack path forced", v)
		limit, forceNack = 0, &byNack
	}
	fixtureTables(t, f)
	f.queue, f.exchange = f.broker.Name("q"), f.broker.Name("events")
	top := &topology.Topology{
		Exchanges: []topology.Exchange{{Name: f.exchange, Type: topology.Fanout}},
		Queues:    []topology.Queue{{Name: f.queue, DeliveryLimit: limit, Retry: &topology.Retry{Delays: f.delays}}},
		Bindings:  []topology.Binding{{Exchange: f.exchange, Queue: f.queue}},
	}
	f.broker.Track(f.exchange, f.queue, top.Queues[0].ParkingLot())
	for _, tier := range top.Queues[0].RetryTiers() {
		f.broker.Track(tier.Queue)
	}
	if _, err := topology.Apply(context.Background(), f.broker.Conn, top); err != nil {
		t.Fatal(err)
	}
	f.pub = f.broker.Channel()
	if err := f.pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 300 // all prefetched: a stop hands back hundreds at once
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("m%d", i))
		f.publish(ids[i], "one-key", "test", []byte("x")) // one lane, applied one at a time
	}

	// Each session applies a message or two and is stopped with the rest queued in its lane.
	var handedBack int64
	for round := range 4 {
		var entered atomic.Int32
		cfg := f.config(func(ctx context.Context, tx *sql.Tx, msg Message) error {
			entered.Add(1)
			time.Sleep(100 * time.Millisecond)
			return recordHandler(ctx, tx, msg)
		})
		cfg.Concurrency, cfg.BatchSize, cfg.Prefetch = 1, 1, n
		s, stop := f.start(f.db.DB, cfg, func(s *Subscriber) { s.testHandBackByNack = forceNack })
		testenv.Eventually(t, 20*time.Second, func() (bool, string) {
			return entered.Load() > 0, fmt.Sprintf("round %d: no message reached the handler", round)
		})
		if err := stop(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		handedBack += s.testHandedBack.Load()
	}
	if handedBack == 0 {
		t.Errorf("4 stops with a backlog in the lane nacked nothing back")
	}
	if parked := f.getAll(naming.ParkingLot(f.queue)); len(parked) > 0 {
		var got []string
		for _, d := range parked {
			got = append(got, d.MessageId)
		}
		t.Fatalf("the broker parked %d messages (%v...) after 4 graceful stops: handing them back counted as failed deliveries",
			len(got), got[:min(len(got), 5)])
	}
	f.start(f.db.DB, f.config(recordHandler))
	f.waitApplied(ids, 20*time.Second)
}
