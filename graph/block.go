package graph

// cut returns n zero values cut from the free end of *block, its capacity
// n (appending to it never writes into a neighbour's), making a new block
// of size values when too few are left; n larger than size/16 gets an
// allocation of its own. Many small pieces of one kind (a worker's
// successes, the node-roles' dependency lists) so cost a few allocations
// instead of one each; a block stays in memory while any piece of it is
// referenced.
func cut[T any](block *[]T, n, size int) []T {
	if n > size/16 {
		return make([]T, n)
	}
	if len(*block) < n {
		*block = make([]T, size)
	}
	s := (*block)[:n:n]
	*block = (*block)[n:]
	return s
}
