#!/usr/bin/env bash
# bench/fault.sh runs one sitting of docs/BENCHMARKS.md "A slow node and
# the cluster's size" (issue #11): what a frozen or throttled peer does to
# healthy nodes, cross-node latency against the bare loop, and how latency,
# relay writes and CPU per event grow with the cluster. Rounds alternate the
# targets (each round rotates their order), so that the noise of a shared
# machine falls on every side; every run records the load average.
#
#   bash bench/fault.sh                     # both parts, about 15 minutes
#   QUICK=1 bash bench/fault.sh             # tiny sizes, a smoke test
#   PARTS=fault REPS=5 bash bench/fault.sh
#
# Parts:
#   fault   three `rumor serve` processes s1, s2, s3; 100 subscribers on s2,
#           4 publishers on s1 at 300 events/s, s3 serves no client. Points:
#           none (no fault), frozen (s3 gets SIGSTOP for FREEZE seconds, then
#           SIGCONT), throttled (s3 is stopped 100 ms in every 500 ms while
#           the publishers run). Beside them, the same load on the bare loop
#           (`rumor bench bare`, one process): the cross-node reference;
#           and bare-3, three bare loops relaying over plain TCP (`rumor
#           bench bare --relay-addr/--relay-to`), published on the first,
#           subscribed on the second: the floor of any three-process run.
#   scale   `rumor dev --nodes N` for N in NODES, subscribers and publishers
#           spread over every node; p99, CPU per event, and the relay's TCP
#           writes per event (below).
#
# Knobs (environment):
#   REPS    rounds; 3 (1 with QUICK=1)
#   PARTS   fault scale (both)
#   NODES   the scale part's cluster sizes; "3 5 9"
#   FREEZE  seconds s3 stays frozen; 2.5
#   WARM    seconds of publishing before a fault starts; 3
#   OUT     where results go; bench-results/fault-<UTC time>. Must not hold results.
#   RUMOR   a rumor binary to run instead of building ./cmd/rumor
#   RUMORS  "label=binary label=binary": every run once with each binary,
#           alternating (the order rotates each round), records labelled;
#           a before/after comparison in one sitting
#   BENCH   the binary whose `rumor bench` (and bare loop) drives every run;
#           the first binary under test
#   IDLE    seconds the started cluster is watched, no client connected, for
#           the idle relay rate; 2
#
# Relay writes: the kernel's per-socket counters (`ss -tin`: data_segs_out,
# bytes_sent) summed over every TCP socket the servers own with a gossip
# port at one end (relay links both ways, and memberlist's rare TCP
# syncs), read when publishing starts and when the run ends, so rumor
# needs no counter of its own. Loopback sends one segment per write with
# TCP_NODELAY (Go's default), so segments count writes. The same counters
# are read over the connect phase (no events) for the idle rate.
#
# Output in $OUT: results.jsonl (one record a run: part, point, target,
# round, exit status, load average, fault timing, relay counters and
# `rumor bench --json`), summary.md, machine.txt, logs/.
#
# Every server is a fresh process for every run, on 127.0.0.1 ports picked
# here and checked free. The script signals only the processes it started
# (SIGSTOP/SIGCONT included), bounds every wait, and continues a stopped
# process before it stops it. Needs bash, go, curl, jq, ss and Linux.
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then REPS=${REPS:-1}; else REPS=${REPS:-3}; fi
PARTS=${PARTS:-"fault scale"}
NODES=${NODES:-"3 5 9"}
FREEZE=${FREEZE:-2.5}
WARM=${WARM:-3}
IDLE=${IDLE:-2}
OUT=${OUT:-bench-results/fault-$(date -u +%Y%m%dT%H%M%SZ)}

cd "$(dirname "$0")/.."
[[ $REPS =~ ^[1-9][0-9]?$ ]] || { echo "fault: REPS=$REPS: want 1 to 99" >&2; exit 2; }
for p in $PARTS; do
	case $p in fault | scale) ;; *) echo "fault: PARTS: unknown part $p" >&2; exit 2 ;; esac
done
for n in $NODES; do
	[[ $n =~ ^[2-9]$|^1[0-6]$ ]] || { echo "fault: NODES: $n: want 2 to 16" >&2; exit 2; }
done
for v in "$FREEZE" "$WARM" "$IDLE"; do
	[[ $v =~ ^[0-9]{1,3}(\.[0-9]+)?$ ]] || { echo "fault: FREEZE, WARM and IDLE are seconds: $v" >&2; exit 2; }
done
for tool in curl jq ss; do
	command -v "$tool" >/dev/null || { echo "fault: needs $tool" >&2; exit 2; }
done
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
if [[ -s $RESULTS ]]; then
	echo "fault: $RESULTS already holds results; pick another OUT" >&2
	exit 2
fi

TMP=$(mktemp -d)
STARTED=()                              # every process this script started
SERVER_PIDS=() SERVER_URLS=() GPORTS=() # the running target's

# stop_pids continues the given pids (ours; one may be frozen), sends
# SIGTERM, waits up to 15s for them to shut down cleanly, then SIGKILL.
stop_pids() {
	local pid left i
	for pid in "$@"; do kill -CONT "$pid" 2>/dev/null || true; done
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for ((i = 0; i < 150; i++)); do
		left=0
		for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=1; done
		((left)) || break
		sleep 0.1
	done
	for pid in "$@"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

cleanup() {
	local code=$?
	((${#STARTED[@]})) && stop_pids "${STARTED[@]}"
	rm -rf "$TMP"
	exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# BLABELS and BPATHS: the binaries under test, each a copy in $TMP.
BLABELS=() BPATHS=()
if [[ -n ${RUMORS:-} ]]; then
	for lp in $RUMORS; do
		[[ $lp =~ ^[A-Za-z0-9_.-]+=. && -x ${lp#*=} ]] || { echo "fault: RUMORS: $lp: want label=executable" >&2; exit 2; }
		BLABELS+=("${lp%%=*}") BPATHS+=("$TMP/rumor-${#BPATHS[@]}")
		cp "${lp#*=}" "${BPATHS[-1]}"
	done
elif [[ -n ${RUMOR:-} ]]; then
	BLABELS=(rumor) BPATHS=("$TMP/rumor-0")
	cp "$RUMOR" "${BPATHS[0]}"
else
	echo "fault: building rumor" >&2
	BLABELS=(tree) BPATHS=("$TMP/rumor-0")
	go build -o "${BPATHS[0]}" ./cmd/rumor
fi
B=${BPATHS[0]}
# BENCH runs the load (`rumor bench`) and the bare loop for every binary, so
# that an A/B sitting changes the servers only.
BENCH_FROM=${BENCH:-the first binary}
if [[ -n ${BENCH:-} ]]; then
	[[ -x $BENCH ]] || { echo "fault: BENCH=$BENCH: not an executable" >&2; exit 2; }
	cp "$BENCH" "$TMP/bench"
	BENCH=$TMP/bench
else
	BENCH=${BPATHS[0]}
fi

load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime; }

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "binaries: ${RUMORS:-${RUMOR:-built from the tree}}; load generator: $BENCH_FROM"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(git status --porcelain 2>/dev/null | wc -l) files changed"
	echo "go: $(go version)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'))"
	echo "open files: $(ulimit -n)"
	echo "load at start: $(load)"
	echo "REPS=$REPS PARTS=\"$PARTS\" NODES=\"$NODES\" FREEZE=$FREEZE WARM=$WARM QUICK=$QUICK"
} >"$OUT/machine.txt"

# port_taken reports whether anything has TCP or UDP port $1 bound.
port_taken() {
	local hex
	hex=$(printf ':%04X ' "$1")
	if [[ -r /proc/net/tcp ]]; then
		cat /proc/net/tcp /proc/net/udp /proc/net/tcp6 /proc/net/udp6 2>/dev/null | awk '{print $2}' | grep -qi -- "${hex% }\$"
		return
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a port in 20000-31999 (below Linux's ephemeral range)
# that nothing has bound and this script has not handed out.
USED_PORTS=" "
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[[ $USED_PORTS == *" $p "* ]] && continue
		port_taken "$p" && continue
		USED_PORTS+="$p "
		echo "$p"
		return 0
	done
	echo "fault: no free port found" >&2
	return 1
}

# wait_up waits up to 15s until $2 answers GET $1 while pid $3 (ours) runs.
wait_up() {
	local i
	for ((i = 0; i < 150; i++)); do
		kill -0 "$3" 2>/dev/null || return 1
		curl -fsS -m 1 -o /dev/null "$1$2" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# all_alive waits up to 20s until every URL's /cluster lists $1 alive members.
all_alive() {
	local n=$1 i u alive
	shift
	for ((i = 0; i < 200; i++)); do
		alive=0
		for u in "$@"; do
			[[ $(curl -fsS -m 1 "$u/cluster" 2>/dev/null | grep -o '"state":"alive"' | wc -l) -eq $n ]] && alive=$((alive + 1))
		done
		((alive == $#)) && return 0
		sleep 0.1
	done
	return 1
}

# start_once starts a fresh target: bare (the reference loop), rumor-3
# (three `rumor serve` processes, s2 and s3 joined to s1) or dev-N (`rumor
# dev`: N nodes in one process). It fills SERVER_PIDS, SERVER_URLS and
# GPORTS (gossip ports).
start_once() {
	local target=$1 log=$2 i port gport seed="" key pid
	SERVER_PIDS=() SERVER_URLS=() GPORTS=()
	case $target in
	bare)
		port=$(free_port)
		"$BENCH" bench bare --http-addr "127.0.0.1:$port" >"$log.bare" 2>&1 &
		pid=$!
		STARTED+=("$pid") SERVER_PIDS+=("$pid") SERVER_URLS+=("http://127.0.0.1:$port")
		wait_up "http://127.0.0.1:$port" /metrics "$pid"
		;;
	bare-3)
		# A bare cluster: b2 and b3 take relayed events, b1 (started last,
		# it dials them before it serves) writes every publish to both.
		local rports=()
		for i in 2 3; do
			port=$(free_port)
			gport=$(free_port)
			"$BENCH" bench bare --http-addr "127.0.0.1:$port" --relay-addr "127.0.0.1:$gport" >"$log.b$i" 2>&1 &
			pid=$!
			STARTED+=("$pid") SERVER_PIDS+=("$pid") SERVER_URLS+=("http://127.0.0.1:$port") GPORTS+=("$gport")
			rports+=("127.0.0.1:$gport")
			wait_up "http://127.0.0.1:$port" /metrics "$pid" || return 1
		done
		port=$(free_port)
		"$BENCH" bench bare --http-addr "127.0.0.1:$port" --relay-to "${rports[0]},${rports[1]}" >"$log.b1" 2>&1 &
		pid=$!
		STARTED+=("$pid")
		SERVER_PIDS=("$pid" "${SERVER_PIDS[@]}") SERVER_URLS=("http://127.0.0.1:$port" "${SERVER_URLS[@]}")
		wait_up "http://127.0.0.1:$port" /metrics "$pid" || return 1
		;;
	dev-*)
		local n=${target#dev-}
		"$B" dev --nodes "$n" --http-port 0 --max-streams-per-client 0 --log-level warn >"$log.dev" 2>&1 &
		pid=$!
		STARTED+=("$pid") SERVER_PIDS+=("$pid")
		for ((i = 0; i < 300; i++)); do
			grep -q "Ctrl-C stops the cluster" "$log.dev" 2>/dev/null && break
			kill -0 "$pid" 2>/dev/null || return 1
			sleep 0.1
		done
		mapfile -t SERVER_URLS < <(grep -oE '^\s+n[0-9]+\s+http://[0-9.:]+' "$log.dev" | awk '{print $2}')
		mapfile -t GPORTS < <(grep -oE '\(gossip [0-9.]+:[0-9]+\)' "$log.dev" | grep -oE '[0-9]+\)$' | tr -d ')')
		((${#SERVER_URLS[@]} == n && ${#GPORTS[@]} == n)) || return 1
		for u in "${SERVER_URLS[@]}"; do wait_up "$u" /readyz "$pid" || return 1; done
		all_alive "$n" "${SERVER_URLS[@]}"
		;;
	rumor-3)
		key=$(head -c 32 /dev/urandom | base64)
		for i in 1 2 3; do
			port=$(free_port)
			gport=$(free_port)
			local args=(serve --http-addr "127.0.0.1:$port" --node-name "s$i" --max-streams-per-client 0 --log-level warn
				--gossip-addr "127.0.0.1:$gport" --gossip-key "$key" --cluster-label "fault-$$")
			[[ -n $seed ]] && args+=(--join "$seed")
			"$B" "${args[@]}" >"$log.s$i" 2>&1 &
			pid=$!
			STARTED+=("$pid") SERVER_PIDS+=("$pid") SERVER_URLS+=("http://127.0.0.1:$port") GPORTS+=("$gport")
			if [[ -z $seed ]]; then
				seed=127.0.0.1:$gport
				wait_up "http://127.0.0.1:$port" /healthz "$pid" || return 1
			fi
		done
		for i in 0 1 2; do wait_up "${SERVER_URLS[i]}" /readyz "${SERVER_PIDS[i]}" || return 1; done
		all_alive 3 "${SERVER_URLS[@]}"
		;;
	esac
}

start_target() {
	local attempt
	for attempt in 1 2 3; do
		if start_once "$1" "$2.$attempt"; then return 0; fi
		echo "fault: $1 did not start (attempt $attempt, see $2.$attempt.*)" >&2
		stop_servers
	done
	return 1
}

# stop_servers stops the target's processes newest first, one at a time.
stop_servers() {
	((${#SERVER_PIDS[@]})) || return 0
	local i keep=() p s gone
	for ((i = ${#SERVER_PIDS[@]} - 1; i >= 0; i--)); do stop_pids "${SERVER_PIDS[i]}"; done
	for p in "${STARTED[@]}"; do
		gone=0
		for s in "${SERVER_PIDS[@]}"; do [[ $p == "$s" ]] && gone=1; done
		((gone)) || keep+=("$p")
	done
	STARTED=("${keep[@]}")
	SERVER_PIDS=() SERVER_URLS=() GPORTS=()
}

# relay_counters prints "time segments bytes": data segments and bytes
# sent, summed over the TCP sockets the servers own that have a gossip
# port at one end.
relay_counters() {
	((${#GPORTS[@]})) || { echo "$EPOCHREALTIME 0 0"; return; }
	ss -tinpH 2>/dev/null | awk -v t="$EPOCHREALTIME" -v pids=" ${SERVER_PIDS[*]} " -v ports=" ${GPORTS[*]} " '
		/^[A-Z]/ {
			ok = 0
			if (!match($0, /pid=[0-9]+/)) next
			pid = substr($0, RSTART + 4, RLENGTH - 4)
			nl = split($4, l, ":"); np = split($5, r, ":")
			ok = index(pids, " " pid " ") && (index(ports, " " l[nl] " ") || index(ports, " " r[np] " "))
			next
		}
		ok {
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^data_segs_out:/) { split($i, a, ":"); segs += a[2] }
				if ($i ~ /^bytes_sent:/) { split($i, a, ":"); bytes += a[2] }
			}
			ok = 0
		}
		END { printf "%s %d %d\n", t, segs, bytes }'
}

# phase_started waits (bounded by the bench's life and 300s) until the
# bench's progress log $1 shows phase $2; false if bench pid $3 ended first.
phase_started() {
	local i
	for ((i = 0; i < 3000; i++)); do
		grep -q " $2 " "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# inject FAULT PID BENCHPID: from WARM seconds into publishing, freezes PID
# for FREEZE seconds, or throttles it (stopped 100 ms in every 500 ms) until
# the publishers are done; prints the seconds the fault lasted.
inject() {
	local fault=$1 pid=$2 bpid=$3 log=$4 i t0
	sleep "$WARM"
	t0=$EPOCHREALTIME
	case $fault in
	frozen)
		kill -STOP "$pid" 2>/dev/null || true
		sleep "$FREEZE"
		kill -CONT "$pid" 2>/dev/null || true
		;;
	throttled)
		# At most 30 minutes of cycles; ends with the publish phase.
		for ((i = 0; i < 3600; i++)); do
			kill -0 "$bpid" 2>/dev/null || break
			grep -q " drain " "$log" 2>/dev/null && break
			kill -STOP "$pid" 2>/dev/null || break
			sleep 0.1
			kill -CONT "$pid" 2>/dev/null || true
			sleep 0.4
		done
		;;
	esac
	secs "$t0" "$EPOCHREALTIME"
}

# secs prints the seconds from $1 to $2 (EPOCHREALTIME values) to 0.01 s.
secs() {
	local a=${1/[.,]/} b=${2/[.,]/}
	local cs=$(((10#$b - 10#$a) / 10000))
	printf '%d.%02d' $((cs / 100)) $((cs % 100))
}

join() {
	local IFS=,
	echo "$*"
}

# run PART POINT TARGET ROUND ARGS... starts the target fresh, runs `rumor
# bench --json ARGS` against it (--url from URLS_OF, every server's pid),
# with the point's fault on the third server, appends the record and stops
# the target.
RUNS=0
run() {
	local part=$1 point=$2 target=$3 round=$4 code result name urls bpid faultSecs=0 ld
	shift 4
	name="$BLABEL-$part${point:+-$point}-$target-$round"
	RUNS=$((RUNS + 1))
	ld=$(load)
	if ! start_target "$target" "$OUT/logs/$name.server"; then
		printf '{"row":"%s","point":"%s","target":"%s","binary":"%s","rep":%d,"exit":-1,"load":"%s","result":null}\n' "$part" "$point" "$target" "$BLABEL" "$round" "$ld" >>"$RESULTS"
		return 0
	fi
	urls=$(join "${SERVER_URLS[@]}")
	# The fault part publishes on s1 and subscribes on s2 only: s3 is the peer.
	[[ $part == fault && $target == *-3 ]] && urls=${SERVER_URLS[0]},${SERVER_URLS[1]}
	local blog=$OUT/logs/$name.bench
	local r0 ri r1 r2
	r0=$(relay_counters)
	sleep "$IDLE"
	ri=$(relay_counters)
	set +e
	"$BENCH" bench --json --metrics=false --url "$urls" --pid "$(join "${SERVER_PIDS[@]}")" "$@" >"$TMP/out.json" 2>"$blog" &
	bpid=$!
	set -e
	if phase_started "$blog" publish "$bpid"; then
		r1=$(relay_counters)
		if [[ $point == frozen || $point == throttled ]]; then
			faultSecs=$(inject "$point" "${SERVER_PIDS[2]}" "$bpid" "$blog")
		fi
	else
		r1=$ri
	fi
	set +e
	wait "$bpid"
	code=$?
	set -e
	r2=$(relay_counters)
	stop_servers
	result=$(head -n 1 "$TMP/out.json")
	[[ $result == "{"* ]] || result=null
	read -r t0 s0 b0 <<<"$r0"
	read -r ti si bi <<<"$ri"
	read -r t1 s1 b1 <<<"$r1"
	read -r t2 s2 b2 <<<"$r2"
	printf '{"row":"%s","point":"%s","target":"%s","binary":"%s","rep":%d,"exit":%d,"load":"%s","fault":{"kind":"%s","seconds":%s},"relay":{"idleSeconds":%s,"idleSegments":%d,"seconds":%s,"segments":%d,"bytes":%d},"result":%s}\n' \
		"$part" "$point" "$target" "$BLABEL" "$round" "$code" "$ld" "${point:-none}" "$faultSecs" \
		"$(secs "$t0" "$ti")" $((si - s0)) "$(secs "$t1" "$t2")" $((s2 - s1)) $((b2 - b1)) "$result" >>"$RESULTS"
	printf 'fault: #%d %s %s %s %s round %d: exit %d, load %s%s\n' "$RUNS" "$BLABEL" "$part" "${point:--}" "$target" "$round" "$code" "$ld" \
		"$([[ $result == null ]] && echo ", no result: see $blog")" >&2
}

# rotate N WORDS... prints the words rotated left by N.
rotate() {
	local n=$1
	shift
	local a=("$@") i
	for ((i = 0; i < ${#a[@]}; i++)); do echo "${a[(i + n) % ${#a[@]}]}"; done
}

if [[ $QUICK == 1 ]]; then
	FAULT_ARGS="--subscribers 20 --channels 4 --size 200 --publishers 2 --rate 100 --count 600 --duration 20s --drain 5s"
	SCALE_ARGS="--subscribers 45 --channels 7 --size 200 --publishers 9 --rate 100 --count 300 --duration 20s --drain 5s"
else
	# Issue #11's load: 300 events/s from 4 publishers on s1, 100
	# subscribers on s2 over 10 channels, 20 s of publishing; the freeze
	# (2.5 s of 20 s) touches about an eighth of the events.
	FAULT_ARGS="--subscribers 100 --channels 10 --size 200 --publishers 4 --rate 300 --count 6000 --duration 40s --drain 10s"
	# 180 subscribers and 45 publishers divide evenly over 3, 5 and 9
	# nodes; 7 channels (prime to 3, 5 and 9) put every channel's
	# subscribers on every node, so (N-1)/N of the deliveries cross nodes.
	SCALE_ARGS="--subscribers 180 --channels 7 --size 200 --publishers 45 --rate 300 --count 6000 --duration 40s --drain 10s"
fi

has_part() { [[ " $PARTS " == *" $1 "* ]]; }

# with_binaries ROUND CMD...: runs CMD once with each binary under test,
# B and BLABEL set, in an order that rotates with the round.
with_binaries() {
	local round=$1 i
	shift
	for i in $(rotate $((round - 1)) "${!BPATHS[@]}"); do
		B=${BPATHS[i]} BLABEL=${BLABELS[i]}
		"$@"
	done
}

if has_part fault; then
	for ((round = 1; round <= REPS; round++)); do
		for t in $(rotate $((round - 1)) bare bare-3 none frozen throttled); do
			if [[ $t == bare ]]; then
				# The bare loop is the same code for every binary: once a round.
				B=${BPATHS[0]} BLABEL=${BLABELS[0]}
				run fault "" bare "$round" $FAULT_ARGS
			elif [[ $t == bare-3 ]]; then
				B=${BPATHS[0]} BLABEL=${BLABELS[0]}
				run fault "" bare-3 "$round" $FAULT_ARGS --cross-node
			else
				with_binaries "$round" run fault "$t" rumor-3 "$round" $FAULT_ARGS --cross-node
			fi
		done
	done
fi

if has_part scale; then
	for ((round = 1; round <= REPS; round++)); do
		for n in $(rotate $((round - 1)) $NODES); do
			with_binaries "$round" run scale "$n" "dev-$n" "$round" $SCALE_ARGS
		done
	done
fi

echo "load at end: $(load)" >>"$OUT/machine.txt"
bash bench/fault-summary.sh "$RESULTS" >"$OUT/summary.md"
cat "$OUT/summary.md"
echo "fault: $RUNS runs; results in $RESULTS, summary in $OUT/summary.md" >&2
