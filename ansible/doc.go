// Package ansible runs an existing Ansible playbook, or a role directory,
// as a mason role against one node of a deployment, so that playbooks an
// estate already has keep working next to native mason roles, wired both
// ways: mason inputs become the playbook's variables, and values the
// playbook sets become typed outputs later roles consume.
//
//	type WebIn struct {
//		Port     int                 `attr:"web.port" default:"8080"`
//		Backends []string            `attr:"web.backends"`
//		Token    attr.Secret[string] `attr:"web.token"`
//	}
//	type WebOut struct {
//		URL string // set by the playbook: set_fact: url=...
//		ansible.Stats
//	}
//	web := ansible.Playbook[WebIn, WebOut]{Dir: "playbooks/web"}
//	d.Bind(pool, role.Of(web), role.Of(healthCheck)) // healthCheck's input: role.Same[WebOut]
//
// # Variables in
//
// Every exported field of In becomes one extra variable, named by its
// `ansible:"name"` tag or else its Go name in snake case (Port → port,
// DBPassword → db_password). Values keep their types — strings, numbers,
// booleans, lists, maps, structs (as maps, by their JSON names) — and
// role.Same/role.One inputs pass their value, role.All the list of values.
// Values are marked unsafe for Jinja: a "{{" inside a value stays text.
//
// Secrets ([attr.Secret]) are revealed only into the pipe that carries the
// variables to ansible-playbook: never the command line, the environment
// or a file. Ansible's screen output is replaced by a callback of this
// package, and every message the role logs or returns (a failed task's
// message, stderr) has each secret value replaced by [attr.Redacted]. The
// journal holds only the role's input digest and its output. A playbook
// that itself writes a secret into a file on the node does so on purpose.
//
// # Outputs out
//
// Every exported field of Out (other than an embedded [Stats]) is read
// back from the variable of the same name (tag or snake case): a fact the
// playbook sets with set_fact, or a result it registers. A field tagged
// `ansible:"name,optional"` may stay unset; any other missing output is
// an error naming the field. Values are decoded into the field's Go type
// (attr.Secret fields included). Embed Stats to see the recap of the run:
// a re-run of a converged playbook reports Changed == 0. (Stats is part of
// the output: roles consuming it run again when the counts change.)
//
// # Re-runs
//
// The role's version is Version plus a digest of every file under Dir
// (the playbook, its roles, templates, files and vars), so editing the
// playbook re-runs it, and only it, with the plan reason "role version
// changed". With CheckMode set, planning a converged role runs the
// playbook with --check and reports drift when a task would change.
//
// # How Ansible reaches the node
//
// ansible-playbook runs on the controller with a connection plugin of this
// package: every command and file transfer goes through the node's own
// provider transport (nsenter for lab nodes, the ssh provider's shared
// connection with its verified host key for machines), over a Unix socket
// in a private temporary directory the role serves while the play runs.
// So the same role works on lab nodes, which run no sshd, and on SSH
// machines without a second set of keys and known_hosts for Ansible, and
// pipelining keeps module arguments off the node's disk. The plugins,
// inventory and Ansible's local temporary files live in that directory
// (on /dev/shm when it exists) and are removed when the run ends.
//
// A failed task is the role's failure: a [*TaskError] with the task's
// name and Ansible's message. Needs ansible-playbook (Debian package
// ansible-core) on the controller and Python 3 on the node.
package ansible
