# mason-unit: the lab's supervisor of units, for lab nodes without systemd.
# Installed by mason as /var/lib/mason/units/mason-unit; changes are
# overwritten. Usage: mason-unit OP NAME [ARG], with OP one of commit,
# start, stop, restart, status, logs, remove, supervise.
#
# A unit NAME has its definition in $units/NAME (unit: the systemd file,
# run: the program's start script, conf: restart policy and delays), its
# state in $state/NAME (status, and sup.lock, held by its supervisor for
# as long as it lives) and its output in $logs/NAME.log. Operations hold
# the node's lock ($state/.lock) so that controllers never race; the
# supervisor never holds it.
set -u
units=/var/lib/mason/units
state=/run/mason/units
logs=/var/log/units
self=$units/mason-unit

die() { echo "mason-unit: $*" >&2; exit 1; }

# sup_alive NAME: the unit's supervisor runs (it holds sup.lock).
sup_alive() {
	[ -e "$state/$1/sup.lock" ] || return 1
	flock -n -E 99 "$state/$1/sup.lock" true
	[ $? -eq 99 ]
}

# field NAME KEY prints KEY from the unit's status file.
field() {
	[ -f "$state/$1/status" ] || return 0
	sed -n "s/^$2=//p" "$state/$1/status"
}

# wait_state NAME STATE... waits (10 s at most) until the status file shows
# one of the states, written by supervisor SUP.
wait_state() {
	n=$1 sup=$2
	shift 2
	i=0
	while [ $i -lt 500 ]; do
		s=$(field "$n" state)
		p=$(field "$n" sup)
		if [ -n "$s" ] && [ "$p" = "$sup" ]; then
			for w in "$@"; do [ "$s" = "$w" ] && return 0; done
		fi
		if [ -n "$sup" ] && ! kill -0 "$sup" 2>/dev/null; then
			[ -n "$s" ] && [ "$p" = "$sup" ] && return 0
			die "the supervisor of unit $n exited at start"
		fi
		sleep 0.02
		i=$((i + 1))
	done
	die "unit $n did not reach state $* within 10s (it is $(field "$n" state))"
}

requires() { (. "$units/$1/conf" && echo "$requires"); }

start_unit() {
	local n sup r
	n=$1
	[ -d "$units/$n" ] || { echo "unit $n is not installed" >&2; exit 44; }
	case " $starting " in *" $n "*) return 0 ;; esac
	starting="$starting $n"
	for r in $(requires "$n"); do
		[ -d "$units/$r" ] || die "unit $n requires unit $r, which is not installed"
		start_unit "$r"
	done
	mkdir -p "$state/$n"
	if sup_alive "$n"; then
		sup=$(field "$n" sup)
		case $(field "$n" state) in
		restarting)
			kill -USR1 "$sup" 2>/dev/null
			wait_state "$n" "$sup" running failed stopped
			;;
		stopping)
			wait_stopped "$n"
			start_unit_fresh "$n"
			;;
		esac
		return 0
	fi
	start_unit_fresh "$n"
}

start_unit_fresh() {
	n=$1
	rm -f "$state/$n/status"
	setsid -f /bin/sh "$self" supervise "$n" </dev/null >/dev/null 2>&1 8>&-
	i=0
	while [ ! -f "$state/$n/status" ] && [ $i -lt 500 ]; do
		sleep 0.02
		i=$((i + 1))
	done
	sup=$(field "$n" sup)
	[ -n "$sup" ] || die "the supervisor of unit $n did not start within 10s"
	wait_state "$n" "$sup" running failed stopped
}

# wait_stopped NAME waits until the unit's supervisor has exited, sending
# SIGKILL to the unit's processes after its stop timeout.
wait_stopped() {
	n=$1
	stop_timeout=90
	[ -f "$units/$n/conf" ] && . "$units/$n/conf"
	flock -w "$stop_timeout" "$state/$n/sup.lock" true && return 0
	pid=$(field "$n" pid)
	[ -n "$pid" ] && [ "$pid" != 0 ] && pkill -KILL -g "$pid" 2>/dev/null
	flock -w 10 "$state/$n/sup.lock" true || die "unit $n did not stop even after SIGKILL"
}

# stop_unit NAME stops the unit and, first, the units that require it (as
# systemd's Requires= does); it adds those that ran to $was_running.
stop_unit() {
	local n u
	n=$1
	[ -d "$units/$n" ] || return 0
	case " $stopping_list " in *" $n "*) return 0 ;; esac
	stopping_list="$stopping_list $n"
	for u in $(ls "$units"); do
		[ -f "$units/$u/conf" ] || continue
		case " $(requires "$u") " in *" $n "*) stop_unit "$u" ;; esac
	done
	sup_alive "$n" || return 0
	was_running="$n $was_running"
	kill -TERM "$(field "$n" sup)" 2>/dev/null
	wait_stopped "$n"
}

# restart_unit NAME stops the unit and the units that require it, then
# starts them all again.
restart_unit() {
	local n u
	n=$1
	was_running=
	stop_unit "$n"
	start_unit "$n"
	for u in $was_running; do
		[ "$u" = "$n" ] || start_unit "$u"
	done
}

status_unit() {
	n=$1
	if [ ! -d "$units/$n" ]; then
		echo state=not-installed
		return 0
	fi
	if [ ! -f "$state/$n/status" ]; then
		echo state=stopped
		return 0
	fi
	# Liveness first: a supervisor writes its last status before it exits,
	# so a status read after it was seen dead is its last word.
	if sup_alive "$n"; then
		cat "$state/$n/status"
		echo supervised=1
	else
		cat "$state/$n/status"
		echo supervised=0
		pid=$(field "$n" pid)
		[ -n "$pid" ] && [ "$pid" != 0 ] && kill -0 "$pid" 2>/dev/null && echo alive=1
	fi
	return 0
}

# commit NAME DIR replaces the unit's definition by the files in DIR if
# they differ, then makes sure the unit runs; it prints what it did.
commit() {
	n=$1 new=$2
	if [ -d "$units/$n" ] && cmp -s "$new/unit" "$units/$n/unit" && cmp -s "$new/run" "$units/$n/run" && cmp -s "$new/conf" "$units/$n/conf"; then
		rm -rf "$new"
		if sup_alive "$n"; then
			case $(field "$n" state) in
			running | starting)
				echo unchanged
				return 0
				;;
			esac
		fi
		start_unit "$n"
		echo started
		return 0
	fi
	existed=0
	[ -d "$units/$n" ] && existed=1
	running=0
	sup_alive "$n" && running=1
	mkdir -p "$units/$n"
	for f in unit conf run; do mv -f "$new/$f" "$units/$n/$f"; done
	rmdir "$new"
	mkdir -p /etc/systemd/system
	cp "$units/$n/unit" "/etc/systemd/system/$n.service.mason-new"
	mv -f "/etc/systemd/system/$n.service.mason-new" "/etc/systemd/system/$n.service"
	if [ $running = 1 ]; then
		restart_unit "$n"
	else
		start_unit "$n"
	fi
	if [ $existed = 1 ]; then echo updated; else echo created; fi
}

remove_unit() {
	n=$1
	stop_unit "$n"
	rm -rf "$units/$n" "$state/$n" "/etc/systemd/system/$n.service"
}

logs_unit() {
	n=$1 lines=$2
	f=$logs/$n.log
	[ -f "$f" ] || return 0
	if [ "$lines" -gt 0 ]; then
		all_logs "$f" | tail -n "$lines"
	else
		all_logs "$f"
	fi
}

all_logs() {
	[ ! -f "$1.1" ] || cat "$1.1"
	cat "$1"
}

# supervise NAME runs the unit's program and restarts it per its policy
# until it is stopped. It writes every change of state to the status file.
supervise() {
	n=$1
	d=$units/$n s=$state/$n
	mkdir -p "$s" "$logs"
	exec 9>>"$s/sup.lock"
	flock -n 9 || exit 0 # another supervisor runs this unit
	restart=on-failure delay=1 stop_timeout=90 burst=5 interval=10 max_log=16777216
	. "$d/conf"
	log=$logs/$n.log
	child= sleeper= stopping= restarts=0 starts= exited=0 code=0
	trap 'stopping=1; [ -n "$child" ] && pkill -TERM -g "$child" 2>/dev/null; [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null' TERM INT HUP
	# USR1 is an explicit start (start_unit while the unit waits to be
	# restarted): it cuts the restart delay short and, as a start someone
	# asked for, clears the count of automatic restarts, so a program whose
	# bad configuration was just fixed is not refused for the failures it
	# had before the fix.
	trap 'kicked=1; [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null' USR1
	put() {
		printf 'state=%s\npid=%s\nexited=%s\nexit=%s\nrestarts=%s\nsince=%s\nsup=%s\n' \
			"$1" "${child:-0}" "$exited" "$code" "$restarts" "$(date +%s)" "$$" >"$s/status.new"
		mv -f "$s/status.new" "$s/status"
	}
	kicked=
	while :; do
		now=$(date +%s)
		if [ -n "$kicked" ]; then
			starts= kicked=
		fi
		set -- $starts
		if [ $# -ge "$burst" ] && [ $((now - $1)) -lt "$interval" ]; then
			echo "mason-unit: $n started $burst times within ${interval}s; not restarting it again" >>"$log"
			put failed
			break
		fi
		[ $# -ge "$burst" ] && shift
		starts="$* $now"
		if [ -f "$log" ] && [ "$(stat -c %s "$log")" -gt "$max_log" ]; then
			mv -f "$log" "$log.1"
		fi
		setsid "$d/run" </dev/null >>"$log" 2>&1 9>&- &
		child=$!
		[ -n "$stopping" ] && pkill -TERM -g "$child" 2>/dev/null
		put running
		while :; do
			wait "$child"
			code=$?
			kill -0 "$child" 2>/dev/null || break
		done
		exited=1
		# What the program left running in its process group goes with it.
		pkill -KILL -g "$child" 2>/dev/null
		if [ -n "$stopping" ]; then
			child=
			put stopped
			break
		fi
		again=0
		case $restart in
		always) again=1 ;;
		on-failure)
			case $code in 0 | 129 | 130 | 141 | 143) ;; *) again=1 ;; esac
			;;
		esac
		child=
		if [ $again = 0 ]; then
			case $code in 0 | 129 | 130 | 141 | 143) put stopped ;; *) put failed ;; esac
			break
		fi
		put restarting
		sleep "$delay" 9>&- &
		sleeper=$!
		wait "$sleeper"
		sleeper=
		if [ -n "$stopping" ]; then
			put stopped
			break
		fi
		restarts=$((restarts + 1))
	done
	exit 0
}

op=${1:-}
name=${2:-}
[ -n "$op" ] && [ -n "$name" ] || die "usage: mason-unit OP NAME"
case $name in */* | .*) die "bad unit name $name" ;; esac
if [ "$op" = supervise ]; then
	supervise "$name"
fi
mkdir -p "$state"
exec 8>>"$state/.lock"
flock 8
starting= stopping_list= was_running=
case $op in
commit) commit "$name" "$3" ;;
start) start_unit "$name" ;;
stop) stop_unit "$name" ;;
restart)
	[ -d "$units/$name" ] || { echo "unit $name is not installed" >&2; exit 44; }
	restart_unit "$name"
	;;
status) status_unit "$name" ;;
logs) logs_unit "$name" "${3:-0}" ;;
remove) remove_unit "$name" ;;
*) die "unknown operation $op" ;;
esac
exit 0
