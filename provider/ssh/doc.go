// Package ssh is the provider driver for machines that already exist and
// are reached over SSH: bare metal, or VMs made by something else. An
// [Inventory] lists the machines (address, port, login users to try, key);
// creating a node claims one of them by name, and deleting the node only
// releases the claim: the machine itself is never touched.
//
// Security is not optional. Host keys are verified against a known_hosts
// file (golang.org/x/crypto/ssh/knownhosts); an unknown key is refused
// unless the user explicitly opts into trust-on-first-use, and a changed
// key is always refused, as a [*HostKeyError]. Private keys never appear in
// logs or errors.
//
// Login users differ between images, so each machine has a list of users
// to probe in order (by default "ubuntu", "ec2-user", "root"); the first
// that accepts the key becomes [provider.Node.Login]. One connection per
// machine is kept and shared by all commands (at most MaxSessions at a
// time); connecting retries with exponential backoff
// (github.com/cenkalti/backoff/v4) for a bounded time, and every dial and
// handshake has a timeout.
//
// Commands run through the login user's shell with the arguments quoted,
// so Command.Args arrive unchanged; they run as the login user (use
// "sudo" yourself where a non-root user needs it). Each command is a
// session multiplexed over the machine's one connection, its stdin
// streamed over the channel (Put is one session, whatever the file's
// size). A command that starts a daemon with "&" returns once it exits:
// at once if the daemon's output is redirected, [WaitDelay] later if the
// daemon still holds the session's stdout or stderr.
//
// The machine's facts (CPUs, memory, OS release, hostname, kernel, MACs)
// are read once, when the node is created, with one command that runs no
// other program but ip(8).
//
// Two things make a re-run of a converged deployment cheap for the
// machines, whose sshd pays for every connection (tens of milliseconds of
// CPU) and every command:
//
//   - [Options.Persist] keeps the connections in a holder process that
//     outlives the controller, as OpenSSH's ControlPersist does for
//     Ansible: the next controller process reuses them over a private unix
//     socket, with the facts read on them. The holder holds no key (the
//     controller signs for it), checks host keys as strictly as the
//     inventory does, and exits when idle. [HolderMain] lets a program
//     start it itself; [ServeHolder] runs one explicitly.
//   - Commands marked [provider.Command.Batch] — short read-only ones such
//     as drift checks — are group committed per machine: those queued
//     together run in one remote shell, each with its own output, exit
//     status and timeout (see [Transport.Run]).
package ssh
