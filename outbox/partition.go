package outbox

// PartitionHash is the hash of a partition key stored with each row: 32-bit FNV-1a, finished
// with MurmurHash3's fmix32. The relay splits the hash space into equal contiguous ranges, one
// per partition, so the relay's partition count can change without rewriting rows, and the
// rows of one partition are one range of the (partition_hash, id) index.
//
// The ranges are picked by the hash's top bits, which FNV-1a alone mixes poorly for short keys
// that differ in their last characters: keys "k0".."k999" put 0.45 to 2.02 times the mean
// number of keys into the 16 partitions (0.13 to 2.94 into 64), so a few partitions carried
// most of the load and a drain ended on them alone. fmix32 makes every bit depend on every
// other: 0.78 to 1.18 (0.51 to 1.60, the spread of 1,000 random keys). The value is stored, so
// it must never change again: see TestPartitionHashIsStable.
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
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
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
