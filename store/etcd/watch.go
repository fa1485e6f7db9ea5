package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/masonops/mason/store"
)

// Watch is an etcd watch on the prefix's range.
//
// The start revision is always explicit: with fromRev 0 Watch first reads
// the current revision and watches from the one after it, so a write that
// happens after Watch returns is never missed (an etcd watch without a
// revision starts wherever the server happens to be when the request
// arrives). Whether fromRev is still in the cluster's history is checked
// before Watch returns. If the cluster compacts past the watch's position
// while the watch is cut and resuming, the history needed to continue
// without a gap is gone; the channel is then closed, as if ctx had ended,
// since the contract has no way to report an error on it.
func (s *driver) Watch(ctx context.Context, prefix string, fromRev int64) (<-chan store.Event, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	full := prefix
	probe := full
	if probe == "" {
		probe = "\x00"
	}
	start := fromRev
	if fromRev <= 0 {
		resp, err := s.cli.Get(ctx, probe, clientv3.WithKeysOnly())
		if err != nil {
			return nil, s.wrap(fmt.Sprintf("watch %q: reading the current revision", prefix), err)
		}
		start = resp.Header.Revision + 1
	} else if _, err := s.cli.Get(ctx, probe, clientv3.WithKeysOnly(), clientv3.WithRev(fromRev)); err != nil && !errors.Is(err, rpctypes.ErrFutureRev) {
		// Reading at fromRev fails exactly when watching from it would:
		// fromRev is older than the compaction point.
		return nil, s.wrap(fmt.Sprintf("watch %q from revision %d", prefix, fromRev), err)
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, store.ErrClosed
	}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel) // Close ends every watch
	out := make(chan store.Event, 64)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer stop()
		defer cancel()
		s.pump(wctx, full, start, out)
	}()
	return out, nil
}

// pump copies etcd watch responses to out until ctx ends, resuming the
// watch from the next revision whenever the cluster cuts it.
func (s *driver) pump(ctx context.Context, full string, next int64, out chan<- store.Event) {
	bo := newBackoff(ctx)
	end := clientv3.GetPrefixRangeEnd(full)
	key := full
	if key == "" {
		key = "\x00"
	}
	for {
		// RequireLeader: a member cut off from its cluster ends the watch
		// instead of going silent, and the resume below finds a member
		// that has a leader.
		wch := s.cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRange(end), clientv3.WithRev(next))
		for resp := range wch {
			if resp.CompactRevision != 0 {
				return // the deferred cancel releases the etcd watch
			}
			if resp.Err() != nil {
				break
			}
			for _, ev := range resp.Events {
				e := store.Event{Key: string(ev.Kv.Key), Revision: ev.Kv.ModRevision}
				if ev.Type == mvccpb.DELETE {
					e.Type = store.EventDelete
				} else {
					e.Type = store.EventPut
					e.Value = ev.Kv.Value
					if e.Value == nil {
						e.Value = []byte{}
					}
				}
				select {
				case out <- e:
				case <-ctx.Done():
					return
				}
			}
			if n := len(resp.Events); n > 0 {
				// etcd never splits one revision's events across responses.
				next = resp.Events[n-1].Kv.ModRevision + 1
				bo.Reset()
			}
		}
		if ctx.Err() != nil {
			return
		}
		d := bo.NextBackOff()
		if d < 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
