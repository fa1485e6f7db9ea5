package swarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/masonops/mason/provider"
	"github.com/masonops/mason/role"
)

// program is a long-running program on a node: dockerd, netsvcd. It is
// started in its own session inside the node (so it outlives the command
// that started it and the controller, and ends with the node), with its
// output appended to a log file and its PID in a file.
type program struct {
	name    string // for messages
	args    []string
	pidFile string
	logFile string
}

func (p program) script() string {
	q := make([]string, len(p.args))
	for i, a := range p.args {
		q[i] = shellQuote(a)
	}
	dir := p.logFile[:strings.LastIndex(p.logFile, "/")]
	return fmt.Sprintf(`mkdir -p %s && echo $$ >%s && exec %s >>%s 2>&1 </dev/null`,
		shellQuote(dir), shellQuote(p.pidFile), strings.Join(q, " "), shellQuote(p.logFile))
}

// running reports whether the program's process is alive.
func (p program) running(ctx context.Context, n *provider.Node) bool {
	res, err := n.Transport.Run(ctx, provider.Command{Args: []string{"sh", "-c",
		`test -f "$1" && kill -0 "$(cat "$1")" 2>/dev/null`, "running", p.pidFile}, Timeout: 10 * time.Second})
	return err == nil && res.ExitCode == 0
}

// start launches the program and waits until ready returns nil; it fails
// at once, with the log's last lines, when the program exits first.
func (p program) start(ctx context.Context, rc *role.Context, max time.Duration, ready func() error) error {
	n := rc.Node()
	if _, err := rc.Exec(ctx, "setsid", "-f", "sh", "-c", p.script()); err != nil {
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	var last error
	err := poll(ctx, max, func() error {
		if !p.running(ctx, n) {
			log, _ := n.Transport.Get(ctx, p.logFile)
			return backoff.Permanent(fmt.Errorf("%s on %s exited at start; last lines of %s:\n%s", p.name, n.Name, p.logFile, tail(log, 3)))
		}
		last = ready()
		return last
	})
	if err != nil && last != nil && err == last {
		return fmt.Errorf("%s on %s did not become ready in %v: %w", p.name, n.Name, max, err)
	}
	return err
}

// stop ends the program with SIGTERM (SIGKILL after grace) and waits until
// it is gone.
func (p program) stop(ctx context.Context, rc *role.Context, grace time.Duration) error {
	script := fmt.Sprintf(`f=%s; [ -f "$f" ] || exit 0; pid=$(cat "$f"); kill -TERM "$pid" 2>/dev/null || { rm -f "$f"; exit 0; }
i=0; while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); if [ $i -gt %d ]; then kill -KILL "$pid" 2>/dev/null; fi; sleep 0.1; done; rm -f "$f"`,
		shellQuote(p.pidFile), int(grace/(100*time.Millisecond)))
	if _, err := rc.Exec(ctx, "sh", "-c", script); err != nil {
		return fmt.Errorf("stopping %s: %w", p.name, err)
	}
	return nil
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(b []byte, lines int) string {
	parts := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
