package ansible

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Stats is the recap of one ansible-playbook run on the node. Embed it in
// a Playbook's Out to keep it with the role's output.
type Stats struct {
	// Ok, Changed, Failed, Unreachable, Skipped, Rescued and Ignored count
	// task results as Ansible's recap does.
	Ok, Changed, Failed, Unreachable, Skipped, Rescued, Ignored int
	// ChangedTasks names the tasks that changed something, in order.
	ChangedTasks []string
}

// String renders the recap as Ansible prints it.
func (s Stats) String() string {
	return fmt.Sprintf("ok=%d changed=%d unreachable=%d failed=%d skipped=%d rescued=%d ignored=%d",
		s.Ok, s.Changed, s.Unreachable, s.Failed, s.Skipped, s.Rescued, s.Ignored)
}

// TaskError is a task that failed (or found its node unreachable) and so
// failed the play.
type TaskError struct {
	// Role and Node say which node-role ran the playbook.
	Role, Node string
	// Task is the task's name as the playbook gives it.
	Task string
	// Msg is Ansible's message for the failure; Detail is the end of the
	// task's stderr or stdout, when it has any. Secrets are redacted in
	// both.
	Msg, Detail string
	// Unreachable is set when Ansible could not reach the node.
	Unreachable bool
}

// Error implements error.
func (e *TaskError) Error() string {
	what := "failed"
	if e.Unreachable {
		what = "could not reach the node"
	}
	s := fmt.Sprintf("ansible: %s: task %q %s on %s: %s", e.Role, e.Task, what, e.Node, e.Msg)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// event is one line the callback writes.
type event struct {
	Event   string          `json:"event"`
	Task    string          `json:"task"`
	Host    string          `json:"host"`
	Status  string          `json:"status"`
	Ignored bool            `json:"ignored"`
	Msg     any             `json:"msg"`
	Stderr  string          `json:"stderr"`
	Stdout  string          `json:"stdout"`
	ModErr  string          `json:"module_stderr"`
	ModOut  string          `json:"module_stdout"`
	RC      *int            `json:"rc"`
	Name    string          `json:"name"`
	Value   json.RawMessage `json:"value"`
	Recap   map[string]int  `json:"recap"`
}

// report is what one run told us.
type report struct {
	stats   Stats
	outputs map[string]json.RawMessage
	failed  *TaskError // the last failure that was not ignored
}

// parseEvents reads the callback's lines for host.
func parseEvents(lines [][]byte, host string, red redactor) (*report, error) {
	rep := &report{outputs: map[string]json.RawMessage{}}
	for _, l := range lines {
		var ev event
		if err := json.Unmarshal(l, &ev); err != nil {
			return nil, fmt.Errorf("unreadable report line from the callback: %w", err)
		}
		if ev.Event == "stats" {
			if ev.Host == host {
				r := ev.Recap
				rep.stats.Ok, rep.stats.Changed, rep.stats.Failed = r["ok"], r["changed"], r["failures"]
				rep.stats.Unreachable, rep.stats.Skipped, rep.stats.Rescued, rep.stats.Ignored = r["unreachable"], r["skipped"], r["rescued"], r["ignored"]
			}
			continue
		}
		if ev.Host != "" && ev.Host != host {
			continue
		}
		switch ev.Event {
		case "task":
			switch ev.Status {
			case "changed":
				rep.stats.ChangedTasks = append(rep.stats.ChangedTasks, ev.Task)
			case "failed", "unreachable":
				if ev.Ignored {
					continue
				}
				msg := fmt.Sprint(ev.Msg)
				if ev.Msg == nil {
					msg = ""
				}
				detail := firstNonEmpty(ev.Stderr, ev.ModErr, ev.Stdout, ev.ModOut)
				if len(detail) > 500 {
					detail = "…" + detail[len(detail)-500:]
				}
				if ev.RC != nil && msg == "non-zero return code" {
					msg = fmt.Sprintf("exit status %d", *ev.RC)
				}
				rep.failed = &TaskError{Task: ev.Task, Node: host, Msg: red.String(msg), Detail: red.String(strings.TrimSpace(detail)), Unreachable: ev.Status == "unreachable"}
			}
		case "output":
			rep.outputs[ev.Name] = ev.Value
		}
	}
	return rep, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}
