package outbox_test

import (
	"fmt"
	"testing"

	"github.com/syncworker/syncworker/outbox"
)

// The hash is stored with every row and decides its partition: a change would put a key's
// pending rows and its new rows into different partitions, which may publish them out of order.
func TestPartitionHashIsStable(t *testing.T) {
	for key, want := range map[string]uint32{
		// computed apart from this code (FNV-1a, then fmix32, in Python)
		"": 0xab3e7c0b, "k0": 0x62d515b3, "order-42": 0x2e7b68d7, "8f14e45f-ceea-467f-a0b6-1cf45c5f9d1e": 0x8a9ec7b0,
	} {
		if got := outbox.PartitionHash(key); got != want {
			t.Errorf("PartitionHash(%q) = %#x, want %#x", key, got, want)
		}
	}
}

// Short keys that differ only at the end (k0..k999, order-N) spread evenly over the
// partitions' hash ranges, which are picked by the hash's top bits.
func TestPartitionHashSpreadsSimilarKeys(t *testing.T) {
	for _, c := range []struct {
		prefix      string
		keys, n     int
		most, least float64 // bounds on the busiest and the idlest partition, as multiples of the mean
	}{
		{"k", 1000, 16, 1.3, 0.7},
		{"order-", 100000, 64, 1.1, 0.9},
		{"", 100000, 64, 1.1, 0.9},
	} {
		counts := make([]int, c.n)
		for i := range c.keys {
			counts[outbox.PartitionOf(outbox.PartitionHash(fmt.Sprint(c.prefix, i)), c.n)]++
		}
		mean := float64(c.keys) / float64(c.n)
		most, least := float64(counts[0]), float64(counts[0])
		for _, v := range counts {
			most, least = max(most, float64(v)), min(least, float64(v))
		}
		if most/mean > c.most || least/mean < c.least {
			t.Errorf("keys %s0..%s%d over %d partitions: from %.2f to %.2f times the mean, want %.2f to %.2f",
				c.prefix, c.prefix, c.keys-1, c.n, least/mean, most/mean, c.least, c.most)
		}
	}
}
