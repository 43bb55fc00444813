package publisher

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncworker/syncworker/internal/testenv"
	"github.com/syncworker/syncworker/outbox"
)

// measureEnv gates the measurements below: they print numbers and assert nothing about speed
// (speed is the bench's business). Run them with
//
//	SYNCWORKER_RELAY_MEASURE=1 go test -run Measure -v ./publisher/
const measureEnv = "SYNCWORKER_RELAY_MEASURE"

func measureOnly(t *testing.T) {
	if os.Getenv(measureEnv) != "1" {
		t.Skipf("measurement; set %s=1 to run it", measureEnv)
	}
}

// TestMeasureDrain compares draining a backlog with one relay (defaults) against publishing
// the same messages straight to the broker with the same channels and window.
func TestMeasureDrain(t *testing.T) {
	measureOnly(t)
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("N")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(t)
	cfg := e.config()
	cfg.Logger = nil
	cfg.setDefaults()
	payload := make([]byte, 200)
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{ID: outbox.NewID(), Exchange: outbox.DefaultExchange, RoutingKey: e.queue,
			PartitionKey: fmt.Sprint("k", i%1000), Type: "measure", Payload: payload}
	}

	// Broker only: the relay's channels and window, messages shaped as the relay sends them.
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < cfg.Channels; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := e.broker.Channel()
			if err := ch.Confirm(false); err != nil {
				t.Error(err)
				return
			}
			confirms := ch.NotifyPublish(make(chan amqp.Confirmation, cfg.Window))
			out := 0
			for i := c; i < n; i += cfg.Channels {
				if out == cfg.Window {
					<-confirms
					out--
				}
				m := msgs[i]
				ch.Publish("", e.queue, true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, MessageId: m.ID,
					Type: m.Type, ContentType: outbox.DefaultContentType, AppId: cfg.AppID, Timestamp: time.Now(),
					Headers: amqp.Table{outbox.HeaderPartitionKey: m.PartitionKey}, Body: m.Payload})
				out++
			}
			for ; out > 0; out-- {
				<-confirms
			}
		}()
	}
	wg.Wait()
	broker := float64(n) / time.Since(start).Seconds()
	if _, err := e.broker.Channel().QueuePurge(e.queue, false); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < n; i += 500 {
		e.write(msgs[i:min(i+500, n)]...)
	}
	msgs = nil
	runtime.GC()
	var peak atomic.Uint64 // highest live heap seen while draining (the whole test process)
	sampling := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-sampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	start = time.Now()
	e.start(e.config())
	testenv.Eventually(t, 5*time.Minute, func() (bool, string) { return e.outboxCount() == 0, "draining" })
	relay := float64(n) / time.Since(start).Seconds()
	close(sampling)
	t.Logf("broker only: %.0f msg/s; relay drain of %d rows (including start-up): %.0f msg/s = %.0f%%; peak heap while draining %.1f MiB",
		broker, n, relay, 100*relay/broker, float64(peak.Load())/(1<<20))
}

// TestMeasureLatency writes 1,000 messages/s from 8 writers for 10 s and reports the time from
// just before COMMIT to the consumer.
func TestMeasureLatency(t *testing.T) {
	measureOnly(t)
	e := newEnv(t)
	cfg := e.config()
	cfg.Logger = nil
	run := e.start(cfg)
	testenv.Eventually(t, 10*time.Second, func() (bool, string) { return len(run.relay.Owned()) == 16, "leasing" })
	ch := e.broker.Channel()
	deliveries, err := ch.Consume(e.queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var commits sync.Map
	var mu sync.Mutex
	var lat []time.Duration
	go func() {
		for d := range deliveries {
			if at, ok := commits.Load(d.MessageId); ok {
				mu.Lock()
				lat = append(lat, time.Since(at.(time.Time)))
				mu.Unlock()
			}
		}
	}()
	end := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(8 * time.Millisecond)
			defer tick.Stop()
			for i := 0; time.Now().Before(end); i++ {
				<-tick.C
				m := e.msg(fmt.Sprint("k", w, "-", i%50), i)
				m.ID = outbox.NewID()
				tx, err := e.db.DB.Begin()
				if err != nil {
					t.Error(err)
					return
				}
				if err := outbox.Write(context.Background(), tx, m); err != nil {
					t.Error(err)
					tx.Rollback()
					return
				}
				commits.Store(m.ID, time.Now())
				if err := tx.Commit(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) { return e.outboxCount() == 0, "draining" })
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		t.Fatal("nothing arrived")
	}
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	t.Logf("%d messages, commit-to-consumer p50 %s p90 %s p99 %s max %s", len(lat), q(.5), q(.9), q(.99), lat[len(lat)-1])
}
