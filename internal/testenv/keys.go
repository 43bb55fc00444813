package testenv

import (
	"fmt"
	"sort"

	"github.com/syncworker/syncworker/outbox"
)

// KeysInHashOrder returns n partition keys named prefix-i, ascending by outbox.PartitionHash:
// the order in which the relay reads their rows within a partition.
func KeysInHashOrder(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint(prefix, "-", i)
	}
	sort.Slice(keys, func(i, j int) bool { return outbox.PartitionHash(keys[i]) < outbox.PartitionHash(keys[j]) })
	return keys
}

// KeyIn returns a partition key named prefix-i whose rows fall into partition no of count.
func KeyIn(prefix string, no, count int) string {
	for i := 0; ; i++ {
		key := fmt.Sprint(prefix, "-", i)
		if outbox.PartitionOf(outbox.PartitionHash(key), count) == no {
			return key
		}
	}
}
