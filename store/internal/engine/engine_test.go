package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/mem"
)

// Past the history bound, old revisions are compacted and recent ones still
// replay in full.
func TestHistoryCompaction(t *testing.T) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	var revs []int64
	for i := 0; i < 20000; i++ {
		r, err := s.Put(ctx, fmt.Sprintf("k/%d", i%10), []byte("v"))
		require.NoError(t, err)
		revs = append(revs, r)
	}
	_, err := s.Watch(ctx, "k/", revs[0])
	require.True(t, errors.Is(err, store.ErrCompacted), "the oldest revision is compacted: %v", err)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	from := revs[len(revs)-5000]
	ch, err := s.Watch(wctx, "k/", from)
	require.NoError(t, err)
	for i := 0; i < 5000; i++ {
		ev := <-ch
		require.Equal(t, from+int64(i), ev.Revision)
	}
}

func BenchmarkPutWithFullHistory(b *testing.B) {
	s := mem.New()
	defer s.Close()
	ctx := context.Background()
	for i := 0; i < 20000; i++ {
		_, _ = s.Put(ctx, "warm", nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = s.Put(ctx, "k", []byte("v"))
	}
}
