package graph

// minHeap is a binary min-heap of values ordered by their own less method:
// the scheduler's ready and parked node-roles. It is not safe for concurrent use.
type minHeap[T interface{ less(T) bool }] struct{ s []T }

func (h *minHeap[T]) len() int { return len(h.s) }

// peek returns the smallest value; the heap must not be empty.
func (h *minHeap[T]) peek() T { return h.s[0] }

func (h *minHeap[T]) push(x T) {
	h.s = append(h.s, x)
	for i := len(h.s) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.s[i].less(h.s[p]) {
			break
		}
		h.s[i], h.s[p] = h.s[p], h.s[i]
		i = p
	}
}

// pop removes and returns the smallest value; the heap must not be empty.
func (h *minHeap[T]) pop() T {
	top := h.s[0]
	n := len(h.s) - 1
	h.s[0] = h.s[n]
	h.s = h.s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h.s[l].less(h.s[m]) {
			m = l
		}
		if r < n && h.s[r].less(h.s[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.s[i], h.s[m] = h.s[m], h.s[i]
		i = m
	}
	return top
}
