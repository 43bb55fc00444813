package publisher

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap/zaptest"

	"github.com/syncworker/syncworker/internal/amqpx"
	"github.com/syncworker/syncworker/internal/testenv"
)

// amqp091-go drops a return its listener has not taken within 5 s (rabbitmq/amqp091-go#349);
// the confirm that follows would then settle an unroutable message as published, and the
// relay would delete its row (promise 1). A channel's loop that stalls (here: its lock held
// for 6 s) while a window of publishes comes back unroutable must still see every return.
func TestAStalledChannelLoopLosesNoReturn(t *testing.T) {
	t.Parallel()
	b := testenv.NewBroker(t)
	conn, cork, err := amqpx.DialRetryCorked(context.Background(), amqpx.DialConfig{URL: b.URL}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const window, n = 256, 200
	pc, err := openPubChannel(conn, cork, window, NopMetrics{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan result, n)
	unroutable := b.Name("nowhere") // amq.direct has no binding with this key
	for i := range n {
		msg := amqp.Publishing{MessageId: fmt.Sprint("m", i), Body: []byte("x")}
		if err := pc.publish(context.Background(), "amq.direct", unroutable, msg, out, i); err != nil {
			t.Fatal(err)
		}
	}
	pc.mu.Lock() // the loop stops at its next return or confirm
	cork.Flush()
	time.Sleep(6 * time.Second) // past the client's 5 s notification timeout
	pc.mu.Unlock()

	returned := 0
	for range n {
		select {
		case r := <-out:
			if r.outcome != outcomeReturned {
				t.Errorf("message m%d: outcome %v (%s), want returned: its return was lost", r.idx, r.outcome, r.reason)
			} else {
				returned++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d outcomes arrived", returned, n)
		}
	}
}
