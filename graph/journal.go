package graph

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/masonops/mason/store"
	"github.com/masonops/mason/store/claim"
)

// record is what the journal keeps for one node-role: its latest
// transition, and what its last successful run produced.
type record struct {
	ID        string
	State     State
	Attempt   int
	Reason    string
	Error     string
	BlockedBy string
	At        time.Time
	Duration  time.Duration
	Last      *success

	// slot, when not 0, is 1 + the node-role's index in the plan it was
	// made by (not journaled): the writer finds a batch's latest record
	// of a node-role, and its key, by it. The writer marks the records
	// a later one of the same batch supersedes as dropped.
	slot int32
}

// dropped is the slot of a queued record that is not to be written.
const dropped = -1

// success is a node-role's last successful run.
type success struct {
	Version string
	Digest  string
	Fields  fieldDigests
	Peers   map[string][]string
	// Output is the role's output struct in gob, after a byte that says
	// how it is held (outPlain, outSecret, outSealed; see secrets.go): an
	// output that holds a secret is sealed whenever it is written.
	Output   []byte
	Duration time.Duration
	At       time.Time
}

// fieldDigests are the digests of a node-role's input fields: names[k]'s
// is digs[k]. Made by a run, names is the role definition's own list
// (role.Def.DigestedInputs, never modified); read from the journal, it is
// the record's, in name order. digs belongs to the record.
type fieldDigests struct {
	names, digs []string
}

func (f fieldDigests) len() int { return len(f.names) }

// get returns the digest of field name.
func (f fieldDigests) get(name string) (string, bool) {
	for k, n := range f.names {
		if n == name {
			return f.digs[k], true
		}
	}
	return "", false
}

// set replaces the digest of field name, if it has one.
func (f fieldDigests) set(name, dg string) {
	for k, n := range f.names {
		if n == name {
			f.digs[k] = dg
			return
		}
	}
}

// journal persists node-role transitions. Appends are asynchronous and
// applied in order, in batches (group commit); a crash loses a suffix of
// the appended records, never a record in the middle.
//
// It is an interface so that tests can stand in for the store. With a
// Controller, storeJournal fences every record with its node-role's claim
// (see storeJournal.claims).
type journal interface {
	// load returns the latest record of every node-role.
	load(ctx context.Context) (map[string]*record, error)
	// append queues rec and returns its sequence number. What rec points
	// to (its Last) must not be modified afterwards.
	append(rec record) uint64
	// appendAll is append for each of recs, in order, at once; it returns
	// the sequence number of the last. The journal may keep recs itself:
	// the caller must not use it afterwards.
	appendAll(recs []record) uint64
	// durable returns the highest sequence number known to be persisted.
	durable() uint64
	// notify receives a value after each batch is persisted or fails.
	notify() <-chan struct{}
	// err returns the error that stopped the journal, if any.
	err() error
	// close persists everything appended and stops the writer.
	close() error
}

// storeJournal is the journal over a store.Store: one key per node-role
// under mason/graph/<deployment>/nr/, one Txn per batch.
type storeJournal struct {
	st     store.Store
	prefix string
	// claims, when set (Options.Controller), fences every record with the
	// claim on its node-role: records of node-roles the session does not
	// hold are dropped, every Txn checks the claims of the records it
	// writes, and a final record deletes its claim in the same Txn.
	claims *claim.Session
	// seal, when set, seals outputs that hold secrets, opens them when
	// the journal is read, and creates a new deployment's keys record with
	// the first write (see secrets.go).
	seal *sealer

	mu      sync.Mutex
	queue   recQueue       // by value: a record costs no allocation of its own
	held    []*claim.Claim // with claims: the claim held on each queued record's node-role when it was appended
	queued  uint64         // sequence number of the last queued record
	closing bool
	wake    chan struct{}
	done    chan struct{}
	ntf     chan struct{}
	dur     atomic.Uint64
	failure atomic.Pointer[error]

	// free are emptied chunks of the queue, under mu.
	free [][]record
	// The writer's own, reused from batch to batch: the list of segments
	// of the queue it last took (handed back to append), the store key of
	// each slot, the batch number each slot was last written in, and the
	// bytes of a batch's records (a store copies what it keeps before Txn
	// returns).
	spareQ    [][]record
	spareHeld []*claim.Claim
	keys      []string
	written   []uint32
	batchNo   uint32
	arena     []byte
	recSize   int // bytes per record in the last batch: how the arena is sized
	ops       []store.Op
}

func journalPrefix(deployment string) string { return "mason/graph/" + deployment + "/nr/" }

func newStoreJournal(st store.Store, deployment string) *storeJournal {
	return &storeJournal{st: st, prefix: journalPrefix(deployment)}
}

func (j *storeJournal) load(ctx context.Context) (map[string]*record, error) {
	ents, _, err := j.st.List(ctx, j.prefix)
	if err != nil {
		return nil, fmt.Errorf("graph: reading journal %s: %w", j.prefix, err)
	}
	out := make(map[string]*record, len(ents))
	for _, e := range ents {
		r := new(record)
		if err := r.unmarshal(e.Value); err != nil {
			return nil, fmt.Errorf("graph: journal entry %s is corrupt: %w (delete the key to forget that node-role)", e.Key, err)
		}
		if err := j.seal.open(r, e.Key); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(e.Key, j.prefix)] = r
	}
	return out, nil
}

// start launches the writer; it must be called before append.
func (j *storeJournal) start() {
	j.wake = make(chan struct{}, 1)
	j.done = make(chan struct{})
	j.ntf = make(chan struct{}, 1)
	go j.writer()
}

func (j *storeJournal) append(rec record) uint64 {
	var held *claim.Claim
	if j.claims != nil {
		held = j.claims.Held(rec.ID)
	}
	j.mu.Lock()
	j.queue.push(rec, &j.free)
	if j.claims != nil {
		j.held = append(j.held, held)
	}
	j.queued++
	seq := j.queued
	j.mu.Unlock()
	j.kick()
	return seq
}

// appendAll queues recs, in order, and returns the sequence number of the
// last one.
func (j *storeJournal) appendAll(recs []record) uint64 {
	var held []*claim.Claim
	if j.claims != nil {
		// A record is fenced by the claim its writer held when it was
		// made: a record made before the claim (pending, skipped at
		// start) must not be written because the claim is held by the
		// time the batch goes out.
		held = make([]*claim.Claim, len(recs))
		for k := range recs {
			held[k] = j.claims.Held(recs[k].ID)
		}
	}
	j.mu.Lock()
	j.queue.pushAll(recs)
	if j.claims != nil {
		j.held = append(j.held, held...)
	}
	j.queued += uint64(len(recs))
	seq := j.queued
	j.mu.Unlock()
	j.kick()
	return seq
}

// kick wakes the writer.
func (j *storeJournal) kick() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

func (j *storeJournal) durable() uint64         { return j.dur.Load() }
func (j *storeJournal) notify() <-chan struct{} { return j.ntf }

func (j *storeJournal) err() error {
	if p := j.failure.Load(); p != nil {
		return *p
	}
	return nil
}

func (j *storeJournal) close() error {
	j.mu.Lock()
	j.closing = true
	j.mu.Unlock()
	j.kick()
	<-j.done
	return j.err()
}

// writer is the single goroutine that persists batches, in order.
func (j *storeJournal) writer() {
	defer close(j.done)
	for {
		j.mu.Lock()
		batch, held, last, closing := j.queue, j.held, j.queued, j.closing
		j.queue, j.held = recQueue{segs: j.spareQ}, j.spareHeld
		j.spareQ, j.spareHeld = nil, nil
		j.mu.Unlock()
		if batch.n == 0 {
			j.spareQ, j.spareHeld = batch.segs, held
			if closing {
				return
			}
			<-j.wake
			continue
		}
		if j.err() == nil {
			if err := j.write(&batch, held); err != nil {
				err = fmt.Errorf("graph: writing journal %s: %w; the executor stops starting work", j.prefix, err)
				j.failure.Store(&err)
			} else {
				j.dur.Store(last)
			}
		}
		clear(held)
		j.mu.Lock()
		batch.recycle(&j.free)
		j.mu.Unlock()
		j.spareQ, j.spareHeld = batch.segs[:0], held[:0]
		select {
		case j.ntf <- struct{}{}:
		default:
		}
	}
}

// txnBytes caps a Txn's record bytes on stores that limit a Txn's
// operations (store.TxnLimiter): etcd also refuses requests over 1.5 MiB
// by default (--max-request-bytes).
const txnBytes = 1 << 20

func (j *storeJournal) write(batch *recQueue, held []*claim.Claim) error {
	// Only the latest record of a node-role in a batch matters; a batch
	// that fits the store's limits is one atomic Txn, so nothing in
	// between is ever visible. Records the executor made carry their
	// node-role's slot; others (none today) are told apart by ID.
	j.batchNo++
	if j.batchNo == 0 { // wrapped: forget every slot's old batch number
		clear(j.written)
		j.batchNo = 1
	}
	var latest map[string]int
	i := batch.n
	for s := len(batch.segs) - 1; s >= 0; s-- {
		seg := batch.segs[s]
		for k := len(seg) - 1; k >= 0; k-- {
			i--
			j.supersede(&seg[k], i, &latest)
		}
	}
	// Records per Txn, and bytes, when the store limits them. Fenced, a
	// record takes up to two writes (its put, its claim's release) and one
	// condition.
	maxRecs, maxBytes := 0, 0
	if n := store.MaxTxnOps(j.st); n > 0 {
		maxRecs, maxBytes = n, txnBytes
		if j.claims != nil {
			maxRecs = max(1, maxRecs/2)
		}
	}
	// The ops of a Txn, room made at once rather than op by op: a record
	// takes up to three (fenced), a Txn holds at most maxRecs records.
	want := batch.n + 1
	if maxRecs > 0 {
		want = min(want, 3*maxRecs+1)
	}
	if want = min(want, 1<<16); cap(j.ops) < want {
		j.ops = make([]store.Op, 0, want)
	}
	ops := j.ops[:0]
	defer func() { clear(ops); j.ops = ops[:0] }()
	var released []string
	n, size := 0, 0
	created := false
	if s := j.seal; s != nil && s.create != nil {
		// A new deployment's keys go with its first records, so that no
		// keyed digest or sealed output is ever written without them; a
		// controller that made other keys meanwhile wins.
		ops = append(ops, store.PutOp(keysKey(s.deployment), s.create).IfRevision(0))
		n, created = 1, true
	}
	// Every value of a Txn is a slice of one arena, reused once the Txn
	// returned: stores copy what they keep.
	arena := j.arena[:0]
	if j.recSize == 0 {
		j.recSize = 128
	}
	if want := batch.n * j.recSize; cap(arena) < want && (maxBytes == 0 || want <= 2*maxBytes) {
		// Room for the batch at once, from the size of records so far:
		// growing it record by record copies it over and over.
		arena = make([]byte, 0, want+want/8)
	}
	marshaled, nrec := 0, 0
	// A batch split in several Txns is not atomic as a whole, but
	// durable() counts it only once every Txn is written, which is all
	// the executor's rules (dependents and destructive roles wait for
	// durable records) rely on.
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := j.st.Txn(context.Background(), ops...)
		if err != nil {
			var ce *store.ConflictError
			if created && errors.As(err, &ce) && ce.Key == keysKey(j.seal.deployment) {
				return fmt.Errorf("another controller made the keys of deployment %s first (%w); make a new plan and apply again", j.seal.deployment, err)
			}
			if j.claims == nil {
				return err
			}
			if id, ok := j.claims.LostID(err); ok {
				j.claims.Forget(id)
				return fmt.Errorf("the claim on %s is no longer %q's (%w): %w", id, j.claims.Owner(), claim.ErrLost, err)
			}
			return err
		}
		for _, id := range released {
			j.claims.Forget(id)
		}
		if created {
			j.seal.create, created = nil, false
		}
		clear(ops)
		if cap(arena) > cap(j.arena) {
			j.arena = arena[:0]
		}
		ops, released, n, size, arena = ops[:0], released[:0], 0, 0, j.arena[:0]
		return nil
	}
	i = -1
	for _, seg := range batch.segs {
		for k := range seg {
			i++
			r := &seg[k]
			if r.slot == dropped || (r.slot == 0 && latest[r.ID] != i) {
				continue
			}
			var c *claim.Claim
			if j.claims != nil {
				// With a Controller, only records made under a claim are
				// journaled, each fenced by that claim; the final record
				// releases it in the same Txn.
				if c = held[i]; c == nil {
					continue // made before this controller held the node-role
				}
			}
			key := j.key(r)
			start := len(arena)
			var err error
			if arena, err = j.seal.marshal(r, key, arena); err != nil {
				return err
			}
			rlen := len(arena) - start
			marshaled, nrec = marshaled+rlen, nrec+1
			if maxBytes > 0 && n > 0 && size+rlen > maxBytes {
				// The record goes with the next Txn: move it to the arena's
				// start once this one is written.
				rec := append([]byte(nil), arena[start:]...)
				arena = arena[:start]
				if err := flush(); err != nil {
					return err
				}
				start = len(arena)
				arena = append(arena, rec...)
			}
			ops = append(ops, store.PutOp(key, arena[start:len(arena):len(arena)]))
			if c != nil {
				ops = append(ops, c.Fence())
				if r.State.Final() {
					ops = append(ops, store.DeleteOp(j.claims.Key(r.ID)))
					released = append(released, r.ID)
				}
			}
			n++
			size += rlen
			if n == maxRecs {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if nrec > 0 {
		j.recSize = max(32, marshaled/nrec)
	}
	return flush()
}

// supersede notes r, the record at index i of a batch walked from its
// end: a record of a node-role met before (so later in the batch) is
// dropped. Records without a slot are told apart by ID, in latest.
func (j *storeJournal) supersede(r *record, i int, latest *map[string]int) {
	if r.slot == 0 {
		if *latest == nil {
			*latest = map[string]int{}
		}
		if _, ok := (*latest)[r.ID]; !ok {
			(*latest)[r.ID] = i
		}
		return
	}
	if int(r.slot) >= len(j.written) {
		j.written = append(j.written, make([]uint32, int(r.slot)+1-len(j.written))...)
		j.keys = append(j.keys, make([]string, len(j.written)-len(j.keys))...)
	}
	if j.written[r.slot] == j.batchNo {
		r.slot = dropped // a later record of the same node-role is written
		return
	}
	j.written[r.slot] = j.batchNo
}

// recQueue is the journal's queue of records: segments, each a chunk of
// chunkRecs records or a slice handed over whole (appendAll), so that a
// growing queue never copies the records it holds.
type recQueue struct {
	segs [][]record
	n    int
}

// chunkRecs is the size of a queue's chunk: 32 KiB of records.
const chunkRecs = 256

// push queues rec at the end, in a chunk from free if one is needed.
func (q *recQueue) push(rec record, free *[][]record) {
	if k := len(q.segs) - 1; k >= 0 && len(q.segs[k]) < cap(q.segs[k]) {
		q.segs[k] = append(q.segs[k], rec)
		q.n++
		return
	}
	var c []record
	if f := *free; len(f) > 0 {
		c, *free = f[len(f)-1], f[:len(f)-1]
	} else {
		c = make([]record, 0, chunkRecs)
	}
	q.segs = append(q.segs, append(c, rec))
	q.n++
}

// pushAll queues recs as a segment of their own: they are not copied,
// and nothing is appended to them.
func (q *recQueue) pushAll(recs []record) {
	if len(recs) > 0 {
		q.segs = append(q.segs, recs[:len(recs):len(recs)])
		q.n += len(recs)
	}
}

// recycle empties q, handing its chunks to free; segments handed over
// whole are let go.
func (q *recQueue) recycle(free *[][]record) {
	for k, seg := range q.segs {
		clear(seg)
		if cap(seg) == chunkRecs {
			*free = append(*free, seg[:0])
		}
		q.segs[k] = nil
	}
	q.n = 0
}

// key is the store key of r's node-role, made once per slot.
func (j *storeJournal) key(r *record) string {
	if r.slot == 0 {
		return j.prefix + r.ID
	}
	k := j.keys[r.slot]
	if k == "" || k[len(j.prefix):] != r.ID {
		k = j.prefix + r.ID
		j.keys[r.slot] = k
	}
	return k
}

// decodeOutput reverses outputCodecs.encode into a value of type t. An
// output still sealed (the journal was read without a key) is an error,
// never a zero value.
func decodeOutput(b []byte, t reflect.Type) (any, error) {
	p := reflect.New(t)
	if len(b) > 0 {
		switch b[0] {
		case outPlain, outSecret:
		case outSealed:
			return nil, fmt.Errorf("the journaled output (%v) is sealed, and no key-encryption key was given to open it", t)
		default:
			return nil, fmt.Errorf("journaled output held in unknown form %d", b[0])
		}
		if err := gob.NewDecoder(bytes.NewReader(b[1:])).DecodeValue(p); err != nil {
			return nil, fmt.Errorf("decoding journaled output as %v: %w", t, err)
		}
	}
	return p.Elem().Interface(), nil
}

func hasExported(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return true
	}
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}

// Entry is what the journal says about one node-role: its latest
// transition and its last success. Outputs are not included: they may
// hold secrets (and those are sealed); SealedOutput says so. ReadJournal
// needs no key.
type Entry struct {
	ID        string
	State     State
	Attempt   int
	Reason    string
	Error     string
	BlockedBy string
	At        time.Time
	Duration  time.Duration
	// Succeeded is when it last succeeded (zero if never), with which role
	// version and input digest.
	Succeeded time.Time
	Version   string
	Digest    string
	// SealedOutput is true when the last success's output holds secrets
	// and is sealed in the journal: it shows only as redacted.
	SealedOutput bool
}

// ReadJournal returns the journal of deployment in st, sorted by ID: what
// a status display or a second controller shows.
func ReadJournal(ctx context.Context, st store.Store, deployment string) ([]Entry, error) {
	recs, err := newStoreJournal(st, deployment).load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		e := Entry{ID: r.ID, State: r.State, Attempt: r.Attempt, Reason: r.Reason, Error: r.Error,
			BlockedBy: r.BlockedBy, At: r.At, Duration: r.Duration}
		if r.Last != nil {
			e.Succeeded, e.Version, e.Digest = r.Last.At, r.Last.Version, r.Last.Digest
			e.SealedOutput = len(r.Last.Output) > 0 && r.Last.Output[0] == outSealed
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ForgetNode deletes the journal records of every node-role on node in
// deployment: do it when a node is removed for good, or rebuilt from
// scratch under the same name (its old records would say it converged).
func ForgetNode(ctx context.Context, st store.Store, deployment, node string) error {
	prefix := journalPrefix(deployment)
	ents, _, err := st.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("graph: forgetting node %s of %s: %w", node, deployment, err)
	}
	var ops []store.Op
	for _, e := range ents {
		if strings.HasSuffix(e.Key, "@"+node) {
			ops = append(ops, store.DeleteOp(e.Key))
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := st.Txn(ctx, ops...); err != nil {
		return fmt.Errorf("graph: forgetting node %s of %s: %w", node, deployment, err)
	}
	return nil
}
