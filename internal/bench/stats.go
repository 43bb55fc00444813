package bench

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syncworker/syncworker/publisher"
)

// latencies summarises a set of durations.
type latencies []time.Duration

func (l latencies) sorted() latencies {
	s := append(latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// percentile returns the p-th percentile (0..100) of sorted durations, nearest rank.
func (l latencies) percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(l))+0.5) - 1
	rank = max(0, min(rank, len(l)-1))
	return l[rank]
}

func ms(d time.Duration) *float64 { return ptr(float64(d) / float64(time.Millisecond)) }

// fill sets the latency fields of r from l.
func (l latencies) fill(r *Result) {
	s := l.sorted()
	r.P50Ms, r.P95Ms, r.P99Ms = ms(s.percentile(50)), ms(s.percentile(95)), ms(s.percentile(99))
	if len(s) > 0 {
		r.MaxMs = ms(s[len(s)-1])
	}
}

// relayStages records the relay's own share of the latency (publisher.Metrics): from the outbox
// INSERT to the publish, and from the publish to the broker's confirm.
type relayStages struct {
	publisher.NopMetrics
	mu                 sync.Mutex
	toPublish, confirm latencies
	// how the relay read and settled its rows (publisher.ReadMetrics)
	ownReads, handOffs, deletes, watched atomic.Int64
}

func (s *relayStages) OwnRead()            { s.ownReads.Add(1) }
func (s *relayStages) HandOff(int)         { s.handOffs.Add(1) }
func (s *relayStages) DeleteStatement(int) { s.deletes.Add(1) }
func (s *relayStages) Watched(n int)       { s.watched.Add(int64(n)) }

func (s *relayStages) PublishLatency(d time.Duration) {
	s.mu.Lock()
	s.toPublish = append(s.toPublish, d)
	s.mu.Unlock()
}

func (s *relayStages) ConfirmLatency(d time.Duration) {
	s.mu.Lock()
	s.confirm = append(s.confirm, d)
	s.mu.Unlock()
}

// summary reads like "relay: insert to publish p50 3.1 / p99 9.8 ms, confirm p50 1.0 / p99 4.2 ms,
// own reads 1,200, hand-offs 6,100, DELETEs 4,900, rows watched 9,800".
func (s *relayStages) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, c := s.toPublish.sorted(), s.confirm.sorted()
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("relay: insert to publish p50 %.1f / p99 %.1f ms, confirm p50 %.1f / p99 %.1f ms, "+
		"own reads %d, hand-offs %d, DELETEs %d, rows watched %d",
		msf(p.percentile(50)), msf(p.percentile(99)), msf(c.percentile(50)), msf(c.percentile(99)),
		s.ownReads.Load(), s.handOffs.Load(), s.deletes.Load(), s.watched.Load())
}
