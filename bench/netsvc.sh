#!/usr/bin/env bash
# bench/netsvc.sh — mason's netsvc against the reference servers, each a
# ratio measured in the same run, on loopback only:
#
#   dns/bind     queries/s of mason's authdns / BIND 9 serving the same zone,
#                measured with dnsperf (target >= 1.0)
#   lb/haproxy   requests/s through mason's lb / HAProxy (mode tcp) in front
#                of the same HTTP backend, measured with wrk (target >= 0.8);
#                the added p99 latency of each is printed too
#
# Installs bind9, dnsperf, haproxy and wrk from Debian when missing (a
# policy-rc.d that returns 101 keeps apt from starting their services), starts
# its own named, haproxy and mason processes on high loopback ports with
# their own configs, stops them by PID, and is bounded to two minutes in all.
# The last two lines are "dns/bind RATIO" and "lb/haproxy RATIO".
#
# Knobs: DUR (seconds per server and measurement, split into two
# alternating halves; default 8), GO (go binary).
set -euo pipefail

DUR=${DUR:-8}
GO=${GO:-go}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/netsvc-bench.XXXXXX)
PIDS=()

stop_watchdog() {
	# The watchdog's sleep first (its only child), then the watchdog.
	pkill -P "$WATCHDOG" 2>/dev/null || true
	kill "$WATCHDOG" 2>/dev/null || true
	wait "$WATCHDOG" 2>/dev/null || true
}

cleanup() {
	local p
	stop_watchdog
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && wait "$p" 2>/dev/null || true
	done
	if [ -n "${POLICY_BACKUP:-}" ]; then
		if [ "$POLICY_BACKUP" = none ]; then rm -f /usr/sbin/policy-rc.d; else mv -f "$POLICY_BACKUP" /usr/sbin/policy-rc.d; fi
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "netsvc.sh: over the two-minute budget, stopping" >&2; exit 124' USR1

# The two-minute bound: a watchdog signals this shell. Its output goes
# nowhere, so that a pipe reading this script's output is not held open.
( sleep 120; kill -USR1 $$ 2>/dev/null ) >/dev/null 2>&1 &
WATCHDOG=$!

log() { echo "# $*" >&2; }

# --- tools -----------------------------------------------------------------
need=()
command -v named >/dev/null || need+=(bind9)
command -v dnsperf >/dev/null || need+=(dnsperf)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "netsvc.sh: missing ${need[*]} and not root to install them" >&2
		exit 1
	fi
	log "installing ${need[*]}"
	if [ -e /usr/sbin/policy-rc.d ]; then
		POLICY_BACKUP="$WORK/policy-rc.d.orig"
		cp -p /usr/sbin/policy-rc.d "$POLICY_BACKUP"
	else
		POLICY_BACKUP=none
	fi
	printf '#!/bin/sh\n# netsvc.sh: never start services during install\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- ports and helpers -----------------------------------------------------
BASE=$((20000 + RANDOM % 20000))
P_BIND=$BASE P_MASON_DNS=$((BASE + 1)) P_BACKEND=$((BASE + 2)) P_HAPROXY=$((BASE + 3)) P_MASON_LB=$((BASE + 4))

wait_tcp() { # port
	local i
	for i in $(seq 1 100); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "netsvc.sh: nothing listens on 127.0.0.1:$1" >&2
	return 1
}

log "building the mason side"
(cd "$ROOT" && "$GO" build -o "$WORK/netsvcbench" ./bench/netsvcbench)

# --- DNS: same zone for BIND and mason -------------------------------------
ZONE=bench.test
{
	echo "\$ORIGIN $ZONE."
	echo "\$TTL 300"
	echo "@ IN SOA ns.$ZONE. hostmaster.$ZONE. 1 3600 600 604800 60"
	echo "@ IN NS ns.$ZONE."
	echo "ns IN A 127.0.0.1"
	for i in $(seq 0 999); do
		echo "host$i IN A 10.$((i / 250)).$((i % 250)).1"
	done
	for i in $(seq 0 99); do
		echo "svc$i IN CNAME host$i"
		echo "_svc$i._tcp IN SRV 0 10 80 host$i.$ZONE."
		echo "host$i IN TXT \"role=bench node $i\""
	done
} >"$WORK/$ZONE.zone"
# Queries: mostly A hits, plus CNAME chases, SRV, TXT, NODATA and NXDOMAIN.
awk -v z="$ZONE" 'BEGIN{srand(42); for(i=0;i<20000;i++){r=rand(); n=int(rand()*1000); m=int(rand()*100);
	if(r<0.70) print "host" n "." z " A";
	else if(r<0.78) print "svc" m "." z " A";
	else if(r<0.84) print "_svc" m "._tcp." z " SRV";
	else if(r<0.90) print "host" m "." z " TXT";
	else if(r<0.95) print "host" n "." z " AAAA";
	else print "missing" n "." z " A"}}' >"$WORK/queries.txt"

mkdir -p "$WORK/bind"
cat >"$WORK/bind/named.conf" <<CONF
options {
	directory "$WORK/bind";
	pid-file "$WORK/bind/named.pid";
	session-keyfile "$WORK/bind/session.key";
	listen-on port $P_BIND { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	allow-query { any; };
	dnssec-validation no;
	notify no;
	minimal-responses yes;
};
controls { };
logging { category default { null; }; category lame-servers { null; }; };
zone "$ZONE" { type primary; file "$WORK/$ZONE.zone"; };
CONF

dnsperf_qps() { # port seconds
	dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries.txt" -l "$2" -c 4 -q 200 -t 2 2>&1 |
		awk '/Queries per second:/ {print $4}'
}

log "DNS: BIND 9 on :$P_BIND"
named -g -c "$WORK/bind/named.conf" >"$WORK/bind/named.log" 2>&1 &
BIND_PID=$!
PIDS+=("$BIND_PID")
log "DNS: mason authdns on :$P_MASON_DNS"
"$WORK/netsvcbench" dns -listen 127.0.0.1:$P_MASON_DNS -zone $ZONE. -zonefile "$WORK/$ZONE.zone" >"$WORK/mason-dns.log" 2>&1 &
MASON_DNS_PID=$!
PIDS+=("$MASON_DNS_PID")
wait_tcp "$P_BIND"
wait_tcp "$P_MASON_DNS"
dig +short @127.0.0.1 -p "$P_BIND" host1.$ZONE A | grep -q 10.0.1.1 || { echo "netsvc.sh: BIND does not answer" >&2; cat "$WORK/bind/named.log" >&2; exit 1; }
dig +short @127.0.0.1 -p "$P_MASON_DNS" host1.$ZONE A | grep -q 10.0.1.1 || { echo "netsvc.sh: mason DNS does not answer" >&2; cat "$WORK/mason-dns.log" >&2; exit 1; }
# Both servers run side by side (the idle one costs nothing) and are
# measured in alternating halves, so that load drifting on a shared machine
# does not favour whichever went first.
HALF=$(awk -v d="$DUR" 'BEGIN { h = int(d / 2); print (h < 1 ? 1 : h) }')
BIND_QPS=0 MASON_QPS=0
for round in 1 2; do
	BIND_QPS=$(awk -v a="$BIND_QPS" -v b="$(dnsperf_qps "$P_BIND" "$HALF")" 'BEGIN { print a + b / 2 }')
	MASON_QPS=$(awk -v a="$MASON_QPS" -v b="$(dnsperf_qps "$P_MASON_DNS" "$HALF")" 'BEGIN { print a + b / 2 }')
done
kill "$BIND_PID" "$MASON_DNS_PID"
wait "$BIND_PID" "$MASON_DNS_PID" 2>/dev/null || true

# --- LB: same backend behind HAProxy and mason -----------------------------
"$WORK/netsvcbench" backend -listen 127.0.0.1:$P_BACKEND >"$WORK/backend.log" 2>&1 &
PIDS+=($!)
wait_tcp "$P_BACKEND"

cat >"$WORK/haproxy.cfg" <<CONF
global
	maxconn 4096
defaults
	mode tcp
	timeout connect 3s
	timeout client 1h
	timeout server 1h
frontend fe
	bind 127.0.0.1:$P_HAPROXY
	default_backend be
backend be
	server s1 127.0.0.1:$P_BACKEND
CONF
haproxy -c -q -f "$WORK/haproxy.cfg"

# wrk_run PORT SECONDS [CONNS] -> "RPS P99_US"
wrk_run() {
	wrk -t 1 -c "${3:-16}" -d "${2}s" --latency "http://127.0.0.1:$1/" 2>&1 | awk '
		function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1000000; return v }
		/Requests\/sec:/ {rps=$2}
		$1 == "99%" {p99=us($2)}
		END {print rps, p99}'
}

log "LB: HAProxy $(haproxy -v | awk 'NR==1{print $3}') on :$P_HAPROXY"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
log "LB: mason lb on :$P_MASON_LB"
"$WORK/netsvcbench" lb -listen 127.0.0.1:$P_MASON_LB -backend 127.0.0.1:$P_BACKEND >"$WORK/mason-lb.log" 2>&1 &
PIDS+=($!)
wait_tcp "$P_HAPROXY"
wait_tcp "$P_MASON_LB"

# Throughput: direct, HAProxy and mason under 16 connections, in
# alternating halves, rates averaged.
DIRECT_RPS=0 HAP_RPS=0 MASON_RPS=0
avg() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b / 2 }'; }
for round in 1 2; do
	read -r r _ < <(wrk_run "$P_BACKEND" "$HALF"); DIRECT_RPS=$(avg "$DIRECT_RPS" "$r")
	read -r r _ < <(wrk_run "$P_HAPROXY" "$HALF"); HAP_RPS=$(avg "$HAP_RPS" "$r")
	read -r r _ < <(wrk_run "$P_MASON_LB" "$HALF"); MASON_RPS=$(avg "$MASON_RPS" "$r")
done
# Added latency: one connection, requests back to back, so the p99 is the
# path's own and not queueing behind other requests (whose depth differs
# with each one's throughput).
LAT=2
read -r _ DIRECT_P99 < <(wrk_run "$P_BACKEND" "$LAT" 1)
read -r _ HAP_P99 < <(wrk_run "$P_HAPROXY" "$LAT" 1)
read -r _ MASON_P99 < <(wrk_run "$P_MASON_LB" "$LAT" 1)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+d", a - b }'; }
printf 'dns  bind %.0f q/s  mason %.0f q/s  (dnsperf -c4 -q200, 2x%ss each, alternating)\n' "$BIND_QPS" "$MASON_QPS" "$HALF"
printf 'lb   req/s (wrk -t1 -c16, 2x%ss each, alternating): direct %.0f | haproxy %.0f | mason %.0f\n' \
	"$HALF" "$DIRECT_RPS" "$HAP_RPS" "$MASON_RPS"
printf 'lb   p99 (wrk -t1 -c1, %ss each): direct %.0fus | haproxy %.0fus (added %sus) | mason %.0fus (added %sus)\n' \
	"$LAT" "$DIRECT_P99" "$HAP_P99" "$(added "$HAP_P99" "$DIRECT_P99")" "$MASON_P99" "$(added "$MASON_P99" "$DIRECT_P99")"
echo "dns/bind $(ratio "$MASON_QPS" "$BIND_QPS")"
echo "lb/haproxy $(ratio "$MASON_RPS" "$HAP_RPS")"
