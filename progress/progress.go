package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masonops/mason/graph"
	"github.com/masonops/mason/internal/problems"
)

// Mode says how a Display draws.
type Mode uint8

// Modes.
const (
	// Auto draws Live when the writer is a terminal (and TERM is not
	// "dumb"), Lines otherwise.
	Auto Mode = iota
	// Live keeps one status area redrawn in place (ANSI cursor movement).
	Live
	// Lines writes one line per start, finish, retry, failure and block,
	// and a periodic summary.
	Lines
)

// Options configures a Display. The zero value is what most programs want.
type Options struct {
	Mode Mode
	// Summary is the least time between two summary lines in Lines mode,
	// while something runs; 0 means 10 s, a negative value means only the
	// last one, at Close.
	Summary time.Duration
	// Redraw is how often Live mode redraws the area; 0 means 250 ms.
	Redraw time.Duration
	// Width and Height override the terminal's size in Live mode; 0 asks
	// the terminal (80×24 when it cannot tell).
	Width, Height int
}

// Display shows the progress of Apply. It implements [graph.Subscriber];
// create it with New and Close it when Apply has returned.
type Display struct {
	w    io.Writer
	opts Options
	live bool
	now  func() time.Time
	// manual leaves ticks to the caller (tests), with no goroutine.
	manual bool

	mu         sync.Mutex
	start      time.Time
	deployment string
	items      map[string]*item
	order      []*item
	counts     [16]int // by graph.State
	slowest    *item   // the finished node-role that ran longest
	ranAny     bool    // something started in this Apply
	lastLine   time.Time
	drawn      int // lines of the live area on the screen
	closed     bool

	stop chan struct{}
	done chan struct{}
}

type item struct {
	id, role, node string
	state          graph.State
	attempt        int
	since          time.Time // when the current attempt (or wait) began
	dur            time.Duration
	err            error
	blockedBy      string
	reason         string
	// note is the role's last progress report while it runs, noted when
	// it came and last written (Lines mode) when.
	note           string
	notedAt, wrote time.Time
	unwritten      bool
}

// New returns a Display writing to w.
func New(w io.Writer, opts Options) *Display {
	if opts.Summary == 0 {
		opts.Summary = 10 * time.Second
	}
	if opts.Redraw <= 0 {
		opts.Redraw = 250 * time.Millisecond
	}
	d := &Display{w: w, opts: opts, now: time.Now, items: map[string]*item{}}
	switch opts.Mode {
	case Live:
		d.live = true
	case Auto:
		_, _, d.live = terminalSize(w)
		d.live = d.live && os.Getenv("TERM") != "dumb"
	}
	return d
}

// Handle implements graph.Subscriber.
func (d *Display) Handle(_ context.Context, e graph.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	t := e.Time
	if t.IsZero() {
		t = d.now()
	}
	if d.start.IsZero() {
		d.start, d.deployment = t, e.Deployment
		d.startTicker()
	}
	it := d.items[e.ID]
	if e.Progress != "" {
		if it != nil && it.state == graph.StateRunning {
			d.noted(t, it, e.Progress)
		}
		return
	}
	if it == nil {
		it = &item{id: e.ID, role: e.Role, node: e.Node}
		d.items[e.ID] = it
		d.order = append(d.order, it)
	} else {
		d.counts[it.state]--
	}
	it.state = e.State
	d.counts[it.state]++
	it.note, it.unwritten = "", false
	if e.Attempt > 0 {
		it.attempt = e.Attempt
	}
	switch e.State {
	case graph.StateRunning:
		it.since, it.err = t, nil
		d.ranAny = true
	case graph.StateRetrying:
		it.since, it.err, it.reason = t, e.Err, e.Reason
	case graph.StateSucceeded, graph.StateFailed:
		it.dur, it.err = e.Duration, e.Err
		if e.Duration > 0 && (d.slowest == nil || e.Duration > d.slowest.dur) {
			d.slowest = it
		}
	case graph.StateBlocked:
		it.blockedBy, it.reason = e.BlockedBy, e.Reason
	default:
		it.reason = e.Reason
	}
	if !d.live {
		d.line(t, it)
	}
}

// Close draws the last frame (Live) or the last summary line (Lines) and
// stops the redraws. It returns the first error writing to w, if any.
func (d *Display) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	stop, done := d.stop, d.done
	d.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start.IsZero() {
		return nil // no event: nothing to say
	}
	now := d.now()
	if d.live {
		return d.draw(now, true)
	}
	return d.summary(now, true)
}

// startTicker starts the goroutine that redraws (Live) or writes the
// periodic summary (Lines); Close stops it.
func (d *Display) startTicker() {
	if d.manual {
		return
	}
	every := d.opts.Redraw
	if !d.live {
		if d.opts.Summary < 0 {
			return
		}
		every = min(d.opts.Summary, time.Second)
	}
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-tk.C:
				d.tick()
			}
		}
	}()
}

func (d *Display) tick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	now := d.now()
	if d.live {
		_ = d.draw(now, false)
		return
	}
	for _, it := range d.order {
		if it.unwritten && now.Sub(it.wrote) >= noteEvery {
			d.writeNote(now, it)
		}
	}
	if d.active() > 0 && d.opts.Summary > 0 && now.Sub(d.lastLine) >= d.opts.Summary {
		_ = d.summary(now, false)
	}
}

// active counts node-roles running or about to retry.
func (d *Display) active() int {
	return d.counts[graph.StateRunning] + d.counts[graph.StateRetrying]
}

func (d *Display) finished() int {
	n := 0
	for _, s := range []graph.State{graph.StateSucceeded, graph.StateFailed, graph.StateBlocked, graph.StateSkipped} {
		n += d.counts[s]
	}
	return n
}

// line writes one event in Lines mode.
func (d *Display) line(t time.Time, it *item) {
	var msg string
	switch it.state {
	case graph.StateRunning:
		msg = "start   " + it.id
		if it.attempt > 1 {
			msg += fmt.Sprintf(" (attempt %d)", it.attempt)
		} else if it.reason != "" {
			msg += ": " + it.reason
		}
	case graph.StateRetrying:
		msg = fmt.Sprintf("retry   %s: %s (%s)", it.id, errText(it.err), it.reason)
	case graph.StateSucceeded:
		msg = fmt.Sprintf("done    %s in %s", it.id, dur(it.dur))
	case graph.StateFailed:
		msg = "FAILED  " + it.id
		if it.attempt > 0 {
			msg += fmt.Sprintf(" after %s in %s", plural(it.attempt, "attempt"), dur(it.dur))
		}
		msg += ": " + errText(it.err)
	case graph.StateBlocked:
		msg = "blocked " + it.id + ": " + blockedText(it)
	default:
		return // pending and skipped node-roles are counted, not listed
	}
	fmt.Fprintf(d.w, "[%s] %s\n", elapsed(t.Sub(d.start)), msg)
	d.lastLine = t
}

// noteEvery is the least time between two progress lines of one
// node-role in Lines mode; reports in between show in the summary.
const noteEvery = 5 * time.Second

// noted records a running node-role's progress report; Lines mode writes
// it as a line unless one was written for it less than noteEvery ago.
func (d *Display) noted(t time.Time, it *item, msg string) {
	it.note, it.notedAt = msg, t
	if d.live {
		return
	}
	if !it.wrote.IsZero() && t.Sub(it.wrote) < noteEvery {
		it.unwritten = true
		return
	}
	d.writeNote(t, it)
}

func (d *Display) writeNote(t time.Time, it *item) {
	fmt.Fprintf(d.w, "[%s] running %s %s: %s\n", elapsed(t.Sub(d.start)), it.id, dur(t.Sub(it.since)), problems.OneLine(it.note))
	it.wrote, it.unwritten, d.lastLine = t, false, t
}

// summary writes the counts as one line in Lines mode.
func (d *Display) summary(now time.Time, last bool) error {
	d.lastLine = now
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", elapsed(now.Sub(d.start)), d.countsText(last))
	if run := d.running(); len(run) > 0 {
		b.WriteString("; running ")
		for i, it := range run {
			if i == 5 {
				fmt.Fprintf(&b, " (+%d)", len(run)-5)
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %s", it.id, dur(now.Sub(it.since)))
			if it.note != "" {
				fmt.Fprintf(&b, " (%s)", problems.OneLine(it.note))
			}
		}
	}
	if d.slowest != nil && d.ranAny {
		fmt.Fprintf(&b, "; slowest %s %s", d.slowest.id, dur(d.slowest.dur))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(d.w, b.String())
	return err
}

// countsText is "5 of 13 done (4 succeeded, 1 unchanged), 3 running, 5
// waiting".
func (d *Display) countsText(last bool) string {
	var parts []string
	for _, s := range []struct {
		st   graph.State
		name string
	}{{graph.StateSucceeded, "succeeded"}, {graph.StateFailed, "failed"}, {graph.StateBlocked, "blocked"}, {graph.StateSkipped, "unchanged"}} {
		if n := d.counts[s.st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s.name))
		}
	}
	text := fmt.Sprintf("%d of %d done", d.finished(), len(d.items))
	if len(parts) > 0 {
		text += " (" + strings.Join(parts, ", ") + ")"
	}
	if n := d.active(); n > 0 {
		text += fmt.Sprintf(", %d running", n)
	}
	if n := d.counts[graph.StatePending]; n > 0 {
		if last {
			text += fmt.Sprintf(", %d not started", n)
		} else {
			text += fmt.Sprintf(", %d waiting", n)
		}
	}
	return text
}

// running returns the node-roles running or retrying, longest first.
func (d *Display) running() []*item {
	var out []*item
	for _, it := range d.order {
		if it.state == graph.StateRunning || it.state == graph.StateRetrying {
			out = append(out, it)
		}
	}
	slices.SortStableFunc(out, func(a, b *item) int { return a.since.Compare(b.since) })
	return out
}

// draw redraws the live area. A final frame says "done" and stays.
func (d *Display) draw(now time.Time, final bool) error {
	width, height, ok := terminalSize(d.w)
	if !ok {
		width, height = 80, 24
	}
	if d.opts.Width > 0 {
		width = d.opts.Width
	}
	if d.opts.Height > 0 {
		height = d.opts.Height
	}
	lines := d.frame(now, final, max(height-1, 3))
	var b strings.Builder
	if d.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA", d.drawn) // back to the area's first line
	}
	b.WriteString("\x1b[J") // clear it and everything below
	for _, l := range lines {
		b.WriteString(truncate(l, width-1))
		b.WriteByte('\n')
	}
	d.drawn = len(lines)
	_, err := io.WriteString(d.w, b.String())
	return err
}

// frame is the live area's text: a headline, what runs (longest first),
// the slowest so far, and failures grouped by cause.
func (d *Display) frame(now time.Time, final bool, room int) []string {
	head := d.deployment
	if head == "" {
		head = "apply"
	}
	state := "running"
	if final {
		state = "finished"
	}
	lines := []string{fmt.Sprintf("%s: %s %s · %s", head, state, strings.TrimSpace(elapsed(now.Sub(d.start))), d.countsText(final))}

	var tail []string
	if d.slowest != nil && d.ranAny {
		tail = append(tail, fmt.Sprintf("  slowest   %s %s", d.slowest.id, dur(d.slowest.dur)))
	}
	tail = append(tail, d.failures()...)

	run := d.running()
	idw := 0
	for _, it := range run {
		idw = max(idw, len(it.id))
	}
	space := room - len(lines) - len(tail)
	for i, it := range run {
		if i == space-1 && len(run) > space {
			lines = append(lines, fmt.Sprintf("  … and %d more running", len(run)-i))
			break
		}
		if i >= space {
			break
		}
		l := fmt.Sprintf("  running   %-*s %6s", idw, it.id, dur(now.Sub(it.since)))
		if it.state == graph.StateRetrying {
			l = fmt.Sprintf("  retrying  %-*s %6s  %s: %s", idw, it.id, "", it.reason, errText(it.err))
		} else if it.attempt > 1 {
			l += fmt.Sprintf("  attempt %d", it.attempt)
		}
		if it.state == graph.StateRunning && it.note != "" {
			l += "  " + problems.OneLine(it.note)
		}
		lines = append(lines, l)
	}
	lines = append(lines, tail...)
	if len(lines) > room {
		lines = append(lines[:room-1], fmt.Sprintf("  … %d more lines", len(lines)-room+1))
	}
	return lines
}

// failures lists failed and blocked node-roles, those that failed the same
// way on several nodes as one line.
func (d *Display) failures() []string {
	var failed, blocked []problems.Problem
	var fitems, bitems []*item
	for _, it := range d.order {
		switch it.state {
		case graph.StateFailed:
			failed = append(failed, problems.Problem{Node: it.node, Key: it.role + "\x00" + errText(it.err), Text: errText(it.err)})
			fitems = append(fitems, it)
		case graph.StateBlocked:
			blocked = append(blocked, problems.Problem{Node: it.node, Key: it.role + "\x00" + it.blockedBy, Text: blockedText(it)})
			bitems = append(bitems, it)
		}
	}
	var out []string
	for _, g := range problems.GroupByNode(failed) {
		out = append(out, fmt.Sprintf("  FAILED    %s: %s", who(fitems[g.First], g), g.Text))
	}
	for _, g := range problems.GroupByNode(blocked) {
		out = append(out, fmt.Sprintf("  blocked   %s: %s", who(bitems[g.First], g), g.Text))
	}
	return out
}

// who names the node-roles of a group: "member@n2", or "member on n1 …
// n9 (9 nodes)".
func who(first *item, g problems.Group) string {
	if len(g.Nodes) == 1 {
		return first.id
	}
	return first.role + " on " + problems.Nodes(g.Nodes)
}

func errText(err error) string {
	if err == nil {
		return "no error recorded"
	}
	return problems.OneLine(err.Error())
}

func blockedText(it *item) string {
	if it.blockedBy != "" {
		return "blocked by " + it.blockedBy
	}
	return problems.OneLine(it.reason)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// elapsed is the time since the start, to a tenth of a second, padded for
// columns: "  12.3s", " 1m05.0s".
func elapsed(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	if d < time.Minute {
		return fmt.Sprintf("%6.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dm%04.1fs", int(d.Minutes()), (d % time.Minute).Seconds())
}

// dur is a duration for people: "0.3s", "12s", "1m05s", "1h02m".
func dur(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// truncate cuts s to at most n characters, ending in "…" when cut.
func truncate(s string, n int) string {
	if n < 1 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
