package bench

import (
	"sort"
	"time"
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
