package etcdstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/bolt"
	etcdstore "github.com/masonops/mason/store/etcd"
	"github.com/masonops/mason/store/etcd/etcdtest"
)

// BenchmarkJournal compares the cost of journal-like writes on etcd and on
// the embedded bolt store, for the same workload on the same disk: every
// transaction is fenced by a lock key (CheckOp) and writes K records of
// 256 bytes for one of 200 node-roles, as the executor's journal does on a
// state transition. "serial" is one writer; "parallel8" is eight writers at
// once, like an executor running eight node-roles, which lets etcd batch
// concurrent proposals into one raft entry while bolt commits (and fsyncs)
// one transaction after the other.
//
// "etcd" is one member, "etcd3" a three-member cluster on this one machine
// (three fsyncs on the same disk per commit, so a pessimistic stand-in for
// three machines). It reports µs per transaction for each backend and the
// ratios etcd/bolt and etcd3/bolt. Run it with
//
//	go test -run '^$' -bench Journal -benchtime 200x ./store/etcd/
func BenchmarkJournal(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	one := etcdtest.Start(b, etcdtest.Options{Dir: filepath.Join(dir, "etcd1")})
	three := etcdtest.Start(b, etcdtest.Options{Members: 3, Dir: filepath.Join(dir, "etcd3")})
	bs, err := bolt.Open(filepath.Join(dir, "journal.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()

	stores := map[string]store.Store{"bolt": bs}
	for name, c := range map[string]*etcdtest.Cluster{"etcd": one, "etcd3": three} {
		es, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: c.Endpoints(), Prefix: "bench/"})
		if err != nil {
			b.Fatal(err)
		}
		defer es.Close()
		stores[name] = es
	}
	fence := map[string]int64{}
	for name, s := range stores {
		rev, err := s.Put(ctx, "lock/controller", []byte("bench"))
		if err != nil {
			b.Fatal(err)
		}
		fence[name] = rev
	}

	value := make([]byte, 256)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	txn := func(s store.Store, fence int64, k, seq int) error {
		ops := []store.Op{store.CheckOp("lock/controller", fence)}
		for j := 0; j < k; j++ {
			ops = append(ops, store.PutOp(fmt.Sprintf("journal/nr-%03d/%d", seq%200, j), value))
		}
		_, err := s.Txn(ctx, ops...)
		return err
	}

	backends := []string{"bolt", "etcd", "etcd3"}
	for _, tc := range []struct {
		name    string
		k       int
		writers int
	}{
		{"serial/k=1", 1, 1},
		{"serial/k=4", 4, 1},
		{"parallel8/k=4", 4, 8},
	} {
		b.Run(tc.name, func(b *testing.B) {
			spent := map[string]time.Duration{}
			for i := 0; i < b.N; i++ {
				for _, name := range backends {
					s := stores[name]
					start := time.Now()
					var wg sync.WaitGroup
					errs := make(chan error, tc.writers)
					for w := 0; w < tc.writers; w++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := txn(s, fence[name], tc.k, i*tc.writers+w); err != nil {
								errs <- err
							}
						}()
					}
					wg.Wait()
					spent[name] += time.Since(start)
					close(errs)
					for err := range errs {
						b.Fatalf("%s: %v", name, err)
					}
				}
			}
			txns := float64(b.N * tc.writers)
			per := func(name string) float64 { return float64(spent[name].Microseconds()) / txns }
			for _, name := range backends {
				b.ReportMetric(per(name), name+"-µs/txn")
			}
			b.ReportMetric(per("etcd")/per("bolt"), "etcd/bolt")
			b.ReportMetric(per("etcd3")/per("bolt"), "etcd3/bolt")
		})
	}
}
