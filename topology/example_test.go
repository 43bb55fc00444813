package topology

import (
	"testing"
	"time"
)

const examplePath = "../examples/topology.yaml"

func TestExampleFileIsValid(t *testing.T) {
	top, err := Load(examplePath)
	if err != nil {
		t.Fatalf("examples/topology.yaml: %v", err)
	}
	kinds := map[ExchangeType]bool{}
	for _, x := range top.Exchanges {
		kinds[x.Type] = true
	}
	for _, k := range []ExchangeType{Fanout, Topic, Direct, Headers} {
		if !kinds[k] {
			t.Errorf("the example has no %s exchange", k)
		}
	}
	q, ok := top.Queue("orders.projection")
	if !ok {
		t.Fatal("the example has no queue orders.projection")
	}
	want := []RetryTier{
		{time.Second, "orders.projection.retry.1s"},
		{10 * time.Second, "orders.projection.retry.10s"},
		{time.Minute, "orders.projection.retry.1m"},
		{10 * time.Minute, "orders.projection.retry.10m"},
	}
	got := q.RetryTiers()
	if len(got) != len(want) {
		t.Fatalf("RetryTiers = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("tier %d = %v, want %v", i, got[i], want[i])
		}
	}
	if pl := q.ParkingLot(); pl != "orders.projection.parked" {
		t.Errorf("ParkingLot = %q", pl)
	}
	if b, _ := top.Queue("billing.invoices"); b.RetryTiers() != nil || b.ParkingLot() != "billing.invoices.parked" {
		t.Errorf("billing.invoices: tiers %v, parking lot %q; want none and billing.invoices.parked", b.RetryTiers(), b.ParkingLot())
	}
	if d, _ := top.Queue("documents.pdf"); d.ParkingLot() != "" || d.queueType() != Quorum {
		t.Errorf("documents.pdf: parking lot %q, type %s; want none and quorum", d.ParkingLot(), d.queueType())
	}
}
