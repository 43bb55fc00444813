package outbox

// PartitionHash is the 32-bit FNV-1a hash of a partition key, stored with each row. The relay
// splits the hash space into equal contiguous ranges, one per partition, so the relay's
// partition count can change without rewriting rows, and the rows of one partition are one
// range of the (partition_hash, id) index.
func PartitionHash(key string) uint32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	return h
}

// PartitionRange returns the inclusive range of partition hashes owned by partition p of
// count partitions. It panics if p is out of range or count is not positive.
func PartitionRange(p, count int) (lo, hi uint32) {
	if count <= 0 || p < 0 || p >= count {
		panic("outbox: partition out of range")
	}
	// Partition p holds the hashes h with p <= h*count/2^32 < p+1, which is what PartitionOf
	// computes; the bounds are ceilings so both agree at every edge.
	ceilDiv := func(a, b uint64) uint64 { return (a + b - 1) / b }
	const space = uint64(1) << 32
	lo = uint32(ceilDiv(space*uint64(p), uint64(count)))
	hi = uint32(ceilDiv(space*uint64(p+1), uint64(count)) - 1)
	return lo, hi
}

// PartitionOf returns the partition of count partitions that owns hash.
func PartitionOf(hash uint32, count int) int {
	return int(uint64(hash) * uint64(count) >> 32)
}
