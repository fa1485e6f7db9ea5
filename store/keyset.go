package store

import "hash/maphash"

// keySet finds a key written twice in one transaction. It is a table of
// op indexes addressed by the keys' hashes, open addressing with linear
// probing, holding no pointers: a Portable keeps one between
// transactions at no cost to the garbage collector, which a map of keys
// would have (it would be scanned at every collection, and rebuilt when
// a collection emptied a pool).
type keySet struct {
	// slots holds, for each taken slot, the upper 32 bits of the key's
	// hash and the op's index plus one; 0 is a free slot.
	slots []uint64
	size  int // slots of the current transaction's table, a power of 2
}

var keySeed = maphash.MakeSeed()

// maxKeySlots bounds the table a Portable keeps (8 bytes a slot).
const maxKeySlots = 1 << 17

// reset readies the set for a transaction of n ops.
func (s *keySet) reset(n int) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	if len(s.slots) < size {
		s.slots = make([]uint64, size)
	}
	s.size = size
}

// clear frees the slots for the next transaction.
func (s *keySet) clear() { clear(s.slots[:s.size]) }

// add records that ops[i] writes its key and reports whether an earlier
// op added did too.
func (s *keySet) add(ops []Op, i int) bool {
	key := ops[i].Key
	h := maphash.String(keySeed, key)
	tag := h >> 32 << 32
	mask := uint64(s.size - 1)
	for pos := h & mask; ; pos = (pos + 1) & mask {
		slot := s.slots[pos]
		if slot == 0 {
			s.slots[pos] = tag | uint64(i+1)
			return false
		}
		if slot&^(1<<32-1) == tag && ops[uint32(slot)-1].Key == key {
			return true
		}
	}
}
