package ssh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/provider/internal/shfile"
)

// maxBatch bounds the commands of one batch.
const maxBatch = 32

// batcher group-commits a machine's Batch commands (see Transport.Run).
type batcher struct {
	conn   *conn
	window time.Duration

	mu    sync.Mutex
	queue []*batchItem
	busy  bool // a loop goroutine is running
}

type batchItem struct {
	ctx   context.Context
	cmd   provider.Command
	taken bool // by a batch: only it completes the item now
	done  chan struct{}
	res   provider.Result
	err   error
}

func (it *batchItem) finish(res provider.Result, err error) {
	it.res, it.err = res, err
	close(it.done)
}

// run queues cmd and waits for its result or for ctx.
func (b *batcher) run(ctx context.Context, t *Transport, cmd provider.Command) (provider.Result, error) {
	it := &batchItem{ctx: ctx, cmd: cmd, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, it)
	if !b.busy {
		b.busy = true
		go b.loop(t)
	}
	b.mu.Unlock()
	select {
	case <-it.done:
		return it.res, it.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if !it.taken {
		for i, q := range b.queue {
			if q == it {
				b.queue = append(b.queue[:i:i], b.queue[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
		return provider.Result{}, fmt.Errorf("ssh: run %q on %s: waiting for a batch: %w", cmd.Args, t.conn.host.Name, ctx.Err())
	}
	b.mu.Unlock()
	<-it.done // its batch watches ctx and ends soon
	return it.res, it.err
}

// loop runs batches until the queue is empty.
func (b *batcher) loop(t *Transport) {
	if b.window > 0 {
		time.Sleep(b.window)
	}
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		items := append([]*batchItem(nil), b.queue[:n]...)
		b.queue = append([]*batchItem(nil), b.queue[n:]...)
		for _, it := range items {
			it.taken = true
		}
		b.mu.Unlock()
		b.runBatch(t, items)
	}
}

// runBatch runs items as one remote shell and hands each its result.
func (b *batcher) runBatch(t *Transport, items []*batchItem) {
	var live []*batchItem
	for _, it := range items {
		if err := it.ctx.Err(); err != nil {
			it.finish(provider.Result{}, fmt.Errorf("ssh: run %q on %s: %w", it.cmd.Args, t.conn.host.Name, err))
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	if len(live) == 1 {
		live[0].finish(t.runOne(live[0].ctx, live[0].cmd))
		return
	}
	// The batch ends when any member's context does.
	bctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, it := range live {
		stop := context.AfterFunc(it.ctx, cancel)
		defer stop()
	}
	var mark [16]byte
	_, _ = rand.Read(mark[:])
	marker := "mason-batch-" + hex.EncodeToString(mark[:])
	cmds := make([]provider.Command, len(live))
	for i, it := range live {
		cmds[i] = it.cmd
	}
	// The script is the login shell's own line: no second shell to start.
	res, err := t.runLine(bctx, provider.Command{Args: []string{fmt.Sprintf("(a batch of %d commands)", len(cmds))}}, batchScript(marker, cmds))
	outs := splitBatch(marker, len(live), res.Stdout, res.Stderr)
	var rerun []*batchItem
	for i, it := range live {
		switch o := outs[i]; {
		case o.complete:
			it.finish(provider.Result{Stdout: o.stdout, Stderr: o.stderr, ExitCode: o.exit, Duration: res.Duration}, nil)
		case it.ctx.Err() != nil:
			it.finish(provider.Result{Stdout: o.stdout, Stderr: o.stderr, Duration: res.Duration},
				fmt.Errorf("ssh: run %q on %s: %w", it.cmd.Args, t.conn.host.Name, it.ctx.Err()))
		default:
			// Another member's timeout (or a broken connection) cut the batch.
			rerun = append(rerun, it)
		}
	}
	_ = err // what it means is in the members' completeness
	var wg sync.WaitGroup
	for _, it := range rerun {
		wg.Add(1)
		go func() { defer wg.Done(); it.finish(t.runOne(it.ctx, it.cmd)) }()
	}
	wg.Wait()
}

// batchScript runs cmds one after the other, each in a subshell (POSIX
// shell syntax, as every command line of this transport), framing
// its stdout and stderr with marker lines: "M i\n" before, "\nM i X\n"
// (X its exit status) after on stdout, "\nM i\n" after on stderr.
func batchScript(marker string, cmds []provider.Command) string {
	var b strings.Builder
	for i, c := range cmds {
		fmt.Fprintf(&b, "printf '%[1]s %[2]d\\n'; printf '%[1]s %[2]d\\n' >&2\n", marker, i)
		fmt.Fprintf(&b, "(%s) </dev/null\n", shfile.CommandLine(c))
		fmt.Fprintf(&b, "x=$?; printf '\\n%[1]s %[2]d %%d\\n' \"$x\"; printf '\\n%[1]s %[2]d\\n' >&2\n", marker, i)
	}
	return b.String()
}

type batchOut struct {
	complete       bool
	stdout, stderr []byte
	exit           int
}

// splitBatch cuts a batch's output into its n members'.
func splitBatch(marker string, n int, stdout, stderr []byte) []batchOut {
	outs := make([]batchOut, n)
	so, se := stdout, stderr
	for i := 0; i < n; i++ {
		head := []byte(fmt.Sprintf("%s %d\n", marker, i))
		if !bytes.HasPrefix(so, head) || !bytes.HasPrefix(se, head) {
			break
		}
		so, se = so[len(head):], se[len(head):]
		outTail := []byte(fmt.Sprintf("\n%s %d ", marker, i))
		errTail := []byte(fmt.Sprintf("\n%s %d\n", marker, i))
		j := bytes.Index(so, outTail)
		k := bytes.Index(se, errTail)
		if j < 0 || k < 0 {
			outs[i].stdout, outs[i].stderr = append([]byte(nil), so...), append([]byte(nil), se...)
			break
		}
		rest := so[j+len(outTail):]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			break
		}
		code, err := strconv.Atoi(string(rest[:nl]))
		if err != nil {
			break
		}
		outs[i] = batchOut{complete: true, stdout: append([]byte(nil), so[:j]...), stderr: append([]byte(nil), se[:k]...), exit: code}
		so, se = rest[nl+1:], se[k+len(errTail):]
	}
	return outs
}
