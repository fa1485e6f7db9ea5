#!/usr/bin/env bash
# bench/fleet.sh — mason's ssh provider against Ansible (Debian's
# ansible-core, best settings: forks >= N, pipelining, ControlPersist) and
# Ansible with Mitogen (Debian's ansible-mitogen, strategy mitogen_linear)
# doing the same work on the same N lab nodes, each running a real sshd:
#
#   gather facts; render a config from the node's facts and every peer's
#   address; copy a 1 MiB file; ensure a directory tree with modes; run a
#   command only when the config changed.
#
# Phases, per tool and round: cold apply (nothing on the nodes, no
# connection open — neither Ansible's ControlPersist masters nor mason's
# connection holder — mason's state empty), converged re-run, re-run after
# fleet_version changed (touches every node's config), drift (one node's
# config tampered with). After every run the end state is checked on every
# node through the lab's own transport (fleetbench verify: config, payload,
# modes, how often the command ran); a wrong end state stops the bench
# with an error. The tools alternate: each round starts with the one that
# went last in the round before.
#
# Every node count's lab is made first and kept up; then each round
# measures every node count in turn (N = 10, 30, 60 in round 1, again in
# round 2, ...), so a run that is cut short still has every node count.
# The tools alternate: each round starts with the one that went last in
# the round before.
#
# Knobs: FLEET_NODES (node counts, default "10 30 60"), FLEET_ROUNDS
# (default 3), FLEET_MITOGEN (1 measures the Mitogen column, 0 skips it;
# default 1), FLEET_BUDGET (seconds for the whole run, default 7200: a
# tool's four phases at one node count are not started when the time they
# took before — or at the next smaller node count, scaled — no longer
# fits; when the budget runs out anyway, the table of what was measured is
# printed before stopping), FLEET_KEEP (a directory to copy the timings
# and every run's output to), FLEET_TOOLS (default "ansible mitogen
# mason"), GO.
#
# Installs ansible-core, ansible-mitogen and openssh-server/-client from
# Debian when missing (a policy-rc.d that returns 101 keeps apt from
# starting sshd), talks only to its own labs' addresses, and removes the
# labs, their sshds, Ansible's SSH masters and its files on exit, also on
# error or interrupt. Prints the table on stdout (progress and the load
# average, sampled every 10 s, on stderr); the last lines are
# "PHASE ansible/mason RATIO" (the median over every round of every node
# count) for cold, converged, changed and drift.
set -euo pipefail

NODES=${FLEET_NODES:-10 30 60}
ROUNDS=${FLEET_ROUNDS:-3}
MITOGEN=${FLEET_MITOGEN:-1}
BUDGET=${FLEET_BUDGET:-7200}
GO=${GO:-go}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/fleet-bench.XXXXXX)
BIN="$WORK/fleetbench"
TIMES="$WORK/times.tsv"
LOADS="$WORK/load.txt"
LABS_UP=()
START=$(date +%s)

log() { echo "# $*" >&2; }

stop_masters() { # stop Ansible's ControlPersist masters under $WORK
	local s p
	for s in "$WORK"/n*/cp-*/*; do
		[ -S "$s" ] && ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1 || true
	done
	# A master still connecting when ansible-playbook was interrupted has
	# no socket yet: find it by its control path, which names this run's
	# own work directory, and end it by PID.
	for p in $(pgrep -f -- "$WORK/n[0-9]*/cp-" 2>/dev/null); do
		kill "$p" 2>/dev/null || true
	done
}

# stop_holders ends mason's SSH connection holders (fleetbench mason
# starts one per lab, DIR/mason-holder, as Ansible starts its masters),
# by the PID in their lock file, only if that PID runs this bench's binary.
stop_holders() {
	local l p i
	for l in "$WORK"/n*/mason-holder/holder.lock; do
		[ -f "$l" ] || continue
		p=$(cat "$l" 2>/dev/null || true)
		[ -n "$p" ] && [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$BIN" ] || continue
		kill "$p" 2>/dev/null || true
		for i in $(seq 1 50); do
			[ -S "${l%/*}/holder.sock" ] || break
			sleep 0.1
		done
	done
}

stop_watchdog() {
	local p
	for p in ${WATCHDOG:-} ${SAMPLER:-}; do
		pkill -P "$p" 2>/dev/null || true
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

# load_summary prints the 1-minute load average sampled during the run:
# min / median / max and the number of samples.
load_summary() {
	[ -s "$LOADS" ] || return 0
	sort -n "$LOADS" | awk '{ v[NR] = $1 } END { printf "load average (1 min, every 10 s) during the run: %s / %s / %s (min / median / max of %d samples)\n", v[1], v[int((NR + 1) / 2)], v[NR], NR }'
}

# stop_child ends the tool run in progress with all its processes
# (ansible-playbook's forks). Tools run in the background, each in a
# process group of its own (setsid), and the script waits for them with
# wait, which a signal interrupts (a foreground child would hold off the
# traps until it finished).
CHILD=""
stop_child() {
	local i
	if [ -n "$CHILD" ]; then
		kill -TERM -- "-$CHILD" 2>/dev/null || true
		for i in $(seq 1 50); do
			kill -0 -- "-$CHILD" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL -- "-$CHILD" 2>/dev/null || true
		wait "$CHILD" 2>/dev/null || true
		CHILD=""
	fi
}

cleanup() {
	local rc=$?
	stop_child
	stop_watchdog
	if [ -n "${FLEET_KEEP:-}" ] && [ -s "$TIMES" ]; then
		mkdir -p "$FLEET_KEEP"
		cp "$TIMES" "$FLEET_KEEP/" 2>/dev/null || true
		cp "$WORK"/n*/*.log "$FLEET_KEEP/" 2>/dev/null || true
	fi
	stop_masters
	stop_holders
	for d in "${LABS_UP[@]}"; do
		"$BIN" down -dir "$d" >&2 || rc=1
	done
	if [ -n "${POLICY_BACKUP:-}" ]; then
		if [ "$POLICY_BACKUP" = none ]; then rm -f /usr/sbin/policy-rc.d; else mv -f "$POLICY_BACKUP" /usr/sbin/policy-rc.d; fi
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
over_budget() {
	echo "fleet.sh: over the budget of ${BUDGET}s, stopping; what was measured:" >&2
	stop_child
	[ -s "$TIMES" ] && "$BIN" report -times "$TIMES" >&2
	load_summary >&2
	exit 124
}
trap over_budget USR1
trap 'exit 130' INT TERM

( sleep "$BUDGET"; kill -USR1 $$ 2>/dev/null ) >/dev/null 2>&1 &
WATCHDOG=$!
( while :; do cut -d' ' -f1 /proc/loadavg >>"$LOADS"; sleep 10; done ) >/dev/null 2>&1 &
SAMPLER=$!

# --- tools -----------------------------------------------------------------
need=()
command -v ansible-playbook >/dev/null || need+=(ansible-core)
[ "$MITOGEN" = 1 ] && ! dpkg-query -W -f='${Status}' ansible-mitogen 2>/dev/null | grep -q 'install ok installed' && need+=(ansible-mitogen)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "fleet.sh: missing ${need[*]} and not root to install them" >&2
		exit 1
	fi
	log "installing ${need[*]}"
	if [ -e /usr/sbin/policy-rc.d ]; then
		POLICY_BACKUP="$WORK/policy-rc.d.orig"
		cp -p /usr/sbin/policy-rc.d "$POLICY_BACKUP"
	else
		POLICY_BACKUP=none
	fi
	printf '#!/bin/sh\n# fleet.sh: never start services during install\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

log "work directory $WORK"
log "building fleetbench"
(cd "$ROOT" && "$GO" build -o "$BIN" ./bench/fleetbench)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ansible_cfg DIR N CPDIR: Ansible's best settings for N hosts.
ansible_cfg() {
	local forks=$2
	[ "$forks" -lt 5 ] && forks=5
	cat >"$1/ansible.cfg" <<CFG
[defaults]
inventory = $1/hosts.ini
forks = $forks
interpreter_python = /usr/bin/python3
# Connecting (and Mitogen's bootstrap of its remote Python) can take
# longer than the default 10 s on a loaded machine.
timeout = 120
host_key_checking = True
retry_files_enabled = False
local_tmp = $1/ansible-local
deprecation_warnings = False
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=$1/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
control_path = $3/%%h
CFG
}

# run_tool TOOL DIR N ROUND PHASE VERSION: one timed run, then verify.
run_tool() {
	local tool=$1 dir=$2 n=$3 round=$4 phase=$5 version=$6 t0 t1 out
	out="$dir/$tool-$n-$round-$phase.log"
	t0=$(now)
	case $tool in
	mason)
		setsid "$BIN" mason -dir "$dir" -version "$version" >"$out" 2>&1 &
		CHILD=$!
		wait "$CHILD" || { CHILD=""; cat "$out" >&2; return 1; }
		;;
	ansible | mitogen)
		local strategy=linear
		[ "$tool" = mitogen ] && strategy=mitogen_linear
		ANSIBLE_CONFIG="$dir/ansible.cfg" ANSIBLE_STRATEGY=$strategy \
			setsid ansible-playbook "$ROOT/bench/fleet/site.yml" \
			-e fleet_version="$version" -e fleet_blob="$dir/blob.bin" >"$out" 2>&1 &
		CHILD=$!
		wait "$CHILD" || { CHILD=""; tail -40 "$out" >&2; return 1; }
		;;
	esac
	CHILD=""
	t1=$(now)
	printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$round" "$phase" "$tool" "$(elapsed "$t0" "$t1")" >>"$TIMES"
	log "$n nodes, round $round, $phase, $tool: $(elapsed "$t0" "$t1")s ($(tail -1 "$out" | cut -c1-120))"
}

# cycle TOOL DIR N ROUND: the four phases for one tool, each verified.
cycle() {
	local tool=$1 dir=$2 n=$3 round=$4
	local tampered
	tampered=$(printf 'n%02d' $(((round % n) + 1)))
	"$BIN" reset -dir "$dir" >&2
	rm -f "$dir/mason.state"
	stop_masters
	stop_holders
	mkdir -p "$dir/cp-$tool-$round"
	ansible_cfg "$dir" "$n" "$dir/cp-$tool-$round"
	run_tool "$tool" "$dir" "$n" "$round" cold 1
	"$BIN" verify -dir "$dir" -version 1 -reloads 1 >&2
	run_tool "$tool" "$dir" "$n" "$round" converged 1
	"$BIN" verify -dir "$dir" -version 1 -reloads 1 >&2
	run_tool "$tool" "$dir" "$n" "$round" changed 2
	"$BIN" verify -dir "$dir" -version 2 -reloads 2 >&2
	"$BIN" tamper -dir "$dir" -node "$tampered" >&2
	run_tool "$tool" "$dir" "$n" "$round" drift 2
	"$BIN" verify -dir "$dir" -version 2 -reloads 2 -tampered "$tampered" >&2
}

tools=(ansible mason)
[ "$MITOGEN" = 1 ] && tools=(ansible mitogen mason)
# FLEET_TOOLS picks tools by hand (for re-measuring one side; the ratios
# then pair runs of different invocations).
[ -n "${FLEET_TOOLS:-}" ] && read -r -a tools <<<"$FLEET_TOOLS"
: >"$TIMES"
for n in $NODES; do
	dir="$WORK/n$n"
	mkdir -p "$dir"
	log "$n lab nodes with sshd (load: $(cut -d' ' -f1-3 /proc/loadavg))"
	LABS_UP+=("$dir")
	"$BIN" up -dir "$dir" -name "fleet-$$-$n" -n "$n" >&2
	{
		echo "[fleet]"
		"$BIN" hosts -dir "$dir"
		echo "[fleet:vars]"
		echo "ansible_user=root"
		echo "ansible_ssh_private_key_file=$dir/id_ed25519"
		# Mitogen ignores interpreter_python in places and falls back to
		# discovery, which tries /usr/bin/python first (absent here).
		echo "ansible_python_interpreter=/usr/bin/python3"
	} >"$dir/hosts.ini"
	mkdir -p "$dir/ansible-local"
done

# fits TOOL N: whether TOOL's four phases at N nodes fit in what is left
# of the budget, judged by how long they took in an earlier round, else at
# the largest smaller node count (scaled by the node count), else yes.
declare -A took
fits() {
	local tool=$1 n=$2 m best="" est left
	if [ -n "${took[$tool-$n]:-}" ]; then
		est=${took[$tool-$n]}
	else
		for m in $NODES; do
			if [ "$m" -lt "$n" ] && [ -n "${took[$tool-$m]:-}" ] && { [ -z "$best" ] || [ "$m" -gt "$best" ]; }; then best=$m; fi
		done
		[ -z "$best" ] && return 0
		est=$((took[$tool-$best] * n / best))
	fi
	left=$((START + BUDGET - $(date +%s)))
	[ "$est" -lt "$left" ]
}

order=("${tools[@]}")
for round in $(seq 1 "$ROUNDS"); do
	for n in $NODES; do
		dir="$WORK/n$n"
		log "round $round, $n nodes (load: $(cut -d' ' -f1-3 /proc/loadavg))"
		for tool in "${order[@]}"; do
			if ! fits "$tool" "$n"; then
				log "round $round, $n nodes, $tool: skipped, its four phases (${took[$tool-$n]:+${took[$tool-$n]} s}${took[$tool-$n]:-estimated from another node count}) no longer fit in the budget"
				continue
			fi
			t0=$(date +%s)
			cycle "$tool" "$dir" "$n" "$round"
			took[$tool-$n]=$(($(date +%s) - t0))
		done
	done
	# Rotate: the tool that went last goes first next round.
	order=("${order[@]: -1}" "${order[@]:0:${#order[@]}-1}")
done
stop_masters
load_summary
"$BIN" report -times "$TIMES"
