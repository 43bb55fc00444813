package topology

import (
	"bytes"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
)

// A parking lot declared by an older syncworker, without its own x-delivery-limit, does not
// block apply: the lot is left as it is (its messages too), and plan says what it lacks. Any
// other difference of a lot is still a conflict.
func TestApplyKeepsAParkingLotDeclaredWithoutADeliveryLimit(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	top := parseFor(t, b, "queues:\n  - {name: orders, retry: {delays: [1s]}}\n")
	lot := top.Queues[0].ParkingLot()
	ch := b.Channel()
	if _, err := ch.QueueDeclare(lot, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	newPublisher(t, b).publish("", lot, "parked-before", nil)

	res := apply(t, b, top)
	var found bool
	for _, c := range res.Plan.Changes {
		if c.Name != lot {
			continue
		}
		found = true
		if c.Action != Exists || len(c.Differences) != 0 || len(c.Notes) != 1 || !strings.Contains(c.Notes[0], "without x-delivery-limit") {
			t.Errorf("old parking lot: %s, differences %v, notes %q", c.Action, c.Differences, c.Notes)
		}
	}
	if !found {
		t.Fatalf("the plan has no change for %s", lot)
	}
	if st, _ := queueExists(t, b, lot); st.Messages != 1 {
		t.Errorf("%s holds %d messages after apply, want the parked one", lot, st.Messages)
	}
	if _, ok := queueExists(t, b, top.Queues[0].Name); !ok {
		t.Errorf("apply did not declare %s next to the old lot", top.Queues[0].Name)
	}
	var out bytes.Buffer
	if err := res.Plan.Format(&out); err != nil || !strings.Contains(out.String(), "note: declared without x-delivery-limit") {
		t.Errorf("plan text lacks the note (%v):\n%s", err, out.String())
	}

	// A lot of the wrong type is still refused.
	other := parseFor(t, b, "queues:\n  - {name: billing, retry: {delays: [1s]}}\n")
	if _, err := ch.QueueDeclare(other.Queues[0].ParkingLot(), true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(t.Context(), b.Conn, other); err == nil {
		t.Error("apply accepted a classic queue as the parking lot")
	}
}
