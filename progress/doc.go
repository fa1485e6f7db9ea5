// Package progress shows what an Apply is doing, for people: a
// [graph.Subscriber] that turns the executor's events into a display.
//
// On a terminal it keeps one live status area at the bottom of the screen
// and redraws it in place: how many node-roles are done, in each state,
// what is running right now and for how long (longest first) with the
// role's own last progress report (role.Context.Progress), the slowest
// node-role so far, the overall elapsed time, and every failure, grouped
// when many node-roles fail the same way. The area's last frame stays on
// the screen when the Apply ends.
//
// In a log or on CI (anything that is not a terminal) it writes lines: one
// when a node-role starts, one when it finishes, fails, is retried or is
// blocked, a line when a running role reports its progress (at most one
// every 5 seconds per node-role; the latest shows in the summary), and a
// summary of the same counts at most once per Options.Summary while
// anything runs (every 10 seconds by default). It
// writes nothing for node-roles that are only waiting or that converged
// (those are counted in the summary), so a converged re-run prints one
// line.
//
//	d := progress.New(os.Stderr, progress.Options{})
//	res, err := graph.Apply(ctx, plan, graph.Options{Events: d})
//	d.Close() // draws the last frame and stops the redraws
//
// A Display keeps no goroutine before the first event, and none after
// Close.
package progress
