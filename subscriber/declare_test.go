package subscriber

import (
	"context"
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/topology"
)

// declareQueue applies the topology a consumer queue q needs: q (quorum, dead-lettering to its
// parking lot), one delay tier per delay, the parking lot, and a fanout exchange bound to q
// that test events are published to. Everything is tracked for deletion.
func declareQueue(t *testing.T, b *testenv.Broker, exchange, q string, delays []time.Duration) {
	t.Helper()
	top := &topology.Topology{
		Exchanges: []topology.Exchange{{Name: exchange, Type: topology.Fanout}},
		Queues:    []topology.Queue{{Name: q, Retry: &topology.Retry{Delays: delays}}},
		Bindings:  []topology.Binding{{Exchange: exchange, Queue: q}},
	}
	b.Track(exchange, q, top.Queues[0].ParkingLot())
	for _, tier := range top.Queues[0].RetryTiers() {
		b.Track(tier.Queue)
	}
	if _, err := topology.Apply(context.Background(), b.Conn, top); err != nil {
		t.Fatalf("apply topology: %v", err)
	}
}
