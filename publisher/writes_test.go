package publisher

import (
	"testing"
	"time"

	"github.com/syncworker/syncworker/internal/testenv"
)

// A batch's publishes are held back and leave together (amqpx.CorkConn): a backlog costs far
// fewer socket writes than messages. Eight partitions share four channels of one fresh
// connection, and the rows name three exchanges the relay has not checked yet, so exchange
// checks and channel opens (which wait for the broker) happen while other partitions hold
// publishes back: a hold that is not flushed before such a wait stalls the relay.
func TestBatchPublishesLeaveInFewWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.consume(e.queue)
	exchanges := []string{e.broker.Name("x1"), e.broker.Name("x2"), e.broker.Name("x3")}
	ch := e.broker.Channel()
	for _, x := range exchanges {
		if err := ch.ExchangeDeclare(x, "fanout", false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(e.queue, "", x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	const total = 4000
	msgs, want := e.keyedMessages(total, 101)
	for i := range msgs {
		msgs[i].Exchange, msgs[i].RoutingKey = exchanges[i%len(exchanges)], ""
	}
	for i := 0; i < total; i += 500 {
		e.write(msgs[i : i+500]...)
	}

	var sock testenv.WriteCounter
	cfg := e.config()
	cfg.Partitions, cfg.Channels = 8, 4
	cfg.AMQP.WrapConn = sock.Wrap
	e.start(cfg)
	e.waitAll(c, want, 60*time.Second)
	if n := sock.Conns(); n != 1 {
		t.Errorf("the relay dialed %d times, want 1 (no connection was cut)", n)
	}
	// One write per message without holding back; the bound leaves room for the handshake,
	// channel opens, exchange checks, heartbeats and flushes while a window is full.
	if n := sock.Writes(); n > total/5 {
		t.Errorf("%d socket writes for %d messages, want at most %d", n, total, total/5)
	} else {
		t.Logf("%d socket writes for %d messages", n, total)
	}
}
