#!/usr/bin/env bash
# bench/sitting.sh runs one sitting of docs/BENCHMARKS.md "Load runs": every
# row of the performance issue against the bare loop, one rumor node and a
# 3-node rumor cluster, alternating the targets, REPS times, then the
# scaling series (subscribers, channels, event size, cluster size), and
# writes the raw results (one JSON record a line) and their summary.
#
#   bash bench/sitting.sh                   # the whole sitting, about an hour
#   QUICK=1 bash bench/sitting.sh           # tiny sizes, a smoke test (about 2 minutes)
#   ROWS="1a 5 nodes" REPS=5 bash bench/sitting.sh
#
# Knobs (environment):
#   REPS    repetitions of every run; 3 (1 with QUICK=1)
#   ROWS    rows and series to run, among: 1a 1b 2 3 4 5 subscribers channels size nodes
#   OUT     where results go; bench-results/<UTC time>. Must not hold results already.
#   QUICK   1 runs tiny sizes, to check the script and the machine
#   LADDER  row 4's rates in events/s; it stops at the first rung no target holds
#   RUMOR   a rumor binary to run instead of building ./cmd/rumor
#   TARGETS the targets of rows 1a to 5, among: bare rumor rumor-3 (all three),
#           dev-3 (rumor dev: 3 nodes in one process; not row 3)
#
# Output in $OUT: results.jsonl (row, point, target, rep, exit status and
# `rumor bench --json` of every run), summary.md (`rumor bench summarize`),
# machine.txt, and logs/ (each run's and each server's stderr).
#
# Every server is a fresh process for every run, on 127.0.0.1 ports picked
# here and checked free; the script stops only the processes it started.
# Needs bash, go, curl and Linux (/proc for the servers' memory and CPU).
set -euo pipefail

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then REPS=${REPS:-1}; else REPS=${REPS:-3}; fi
ROWS=${ROWS:-"1a 1b 2 3 4 5 subscribers channels size nodes"}
OUT=${OUT:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}
if [[ $QUICK == 1 ]]; then LADDER=${LADDER:-"200 400"}; else LADDER=${LADDER:-"1000 1500 2000 2500 3000 3500 4000 4500 5000"}; fi

cd "$(dirname "$0")/.."
[[ $REPS =~ ^[1-9][0-9]?$ ]] || { echo "sitting: REPS=$REPS: want 1 to 99" >&2; exit 2; }
for r in $ROWS; do
	case $r in 1a | 1b | 2 | 3 | 4 | 5 | subscribers | channels | size | nodes) ;;
	*) echo "sitting: ROWS: unknown row $r" >&2; exit 2 ;;
	esac
done
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
if [[ -s $RESULTS ]]; then
	echo "sitting: $RESULTS already holds results; pick another OUT" >&2
	exit 2
fi

TMP=$(mktemp -d)
STARTED=() # every process this script started, to stop on exit
SERVER_PIDS=() SERVER_URLS=()

# stop_pids sends SIGTERM to the given pids (ours), waits up to 15s for
# them to shut down cleanly, then sends SIGKILL to what is left.
stop_pids() {
	local pid left i
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

if [[ -n ${RUMOR:-} ]]; then
	cp "$RUMOR" "$TMP/rumor"
else
	echo "sitting: building rumor" >&2
	go build -o "$TMP/rumor" ./cmd/rumor
fi
B=$TMP/rumor

{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "binary: ${RUMOR:-built from the tree}"
	echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(git status --porcelain 2>/dev/null | wc -l) files changed"
	echo "go: $(go version)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'))"
	echo "memory: $(grep MemTotal /proc/meminfo 2>/dev/null | tr -s ' ' | cut -d' ' -f2-)"
	echo "open files: $(ulimit -n)"
	echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
	echo "REPS=$REPS ROWS=\"$ROWS\" QUICK=$QUICK LADDER=\"$LADDER\""
} >"$OUT/machine.txt"

# port_taken reports whether anything on this machine has TCP or UDP port
# $1 bound (gossip uses both), from /proc/net, or else by connecting.
port_taken() {
	local hex
	hex=$(printf ':%04X ' "$1")
	if [[ -r /proc/net/tcp ]]; then
		cat /proc/net/tcp /proc/net/udp /proc/net/tcp6 /proc/net/udp6 2>/dev/null | awk '{print $2}' | grep -qi -- "${hex% }\$"
		return
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a port in 20000-31999 (below Linux's ephemeral range, so
# the bench's own connections never take it) that nothing has bound and
# this script has not handed out.
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
	echo "sitting: no free port found" >&2
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

# start_target starts a fresh target: bare (the reference loop), rumor (one
# node), rumor-N (N processes, gossiping, every node joined to the first) or
# dev-N (rumor dev: N nodes in one process). It
# fills SERVER_PIDS and SERVER_URLS, retrying with other ports when a port
# was taken between the check and the start.
start_target() {
	local target=$1 log=$2 attempt
	for attempt in 1 2 3; do
		SERVER_PIDS=() SERVER_URLS=()
		if start_once "$target" "$log.$attempt"; then return 0; fi
		echo "sitting: $target did not start (attempt $attempt, see $log.$attempt.*)" >&2
		stop_servers
	done
	return 1
}

start_once() {
	local target=$1 log=$2 n i port gport seed="" key pid alive
	if [[ $target == bare ]]; then
		port=$(free_port)
		"$B" bench bare --http-addr "127.0.0.1:$port" >"$log.bare" 2>&1 &
		pid=$!
		STARTED+=("$pid") SERVER_PIDS+=("$pid") SERVER_URLS+=("http://127.0.0.1:$port")
		wait_up "http://127.0.0.1:$port" /metrics "$pid"
		return
	fi
	if [[ $target == dev-* ]]; then
		# rumor dev: N nodes in one process (one Go runtime), HTTP ports
		# picked by the kernel and read from its banner.
		n=${target#dev-}
		"$B" dev --nodes "$n" --http-port 0 --max-streams-per-client 0 --log-level warn >"$log.dev" 2>&1 &
		pid=$!
		STARTED+=("$pid") SERVER_PIDS+=("$pid")
		for ((i = 0; i < 300; i++)); do
			grep -q "Ctrl-C stops the cluster" "$log.dev" 2>/dev/null && break
			kill -0 "$pid" 2>/dev/null || return 1
			sleep 0.1
		done
		mapfile -t SERVER_URLS < <(grep -oE '^\s+n[0-9]+\s+http://[0-9.:]+' "$log.dev" | awk '{print $2}')
		((${#SERVER_URLS[@]} == n)) || return 1
		for u in "${SERVER_URLS[@]}"; do wait_up "$u" /readyz "$pid" || return 1; done
		return 0
	fi
	n=1
	[[ $target == rumor-* ]] && n=${target#rumor-}
	key=$(head -c 32 /dev/urandom | base64)
	for ((i = 1; i <= n; i++)); do
		port=$(free_port)
		local args=(serve --http-addr "127.0.0.1:$port" --node-name "s$i" --max-streams-per-client 0 --pprof --log-level warn)
		if ((n > 1)); then
			gport=$(free_port)
			args+=(--gossip-addr "127.0.0.1:$gport" --gossip-key "$key" --cluster-label "sitting-$$")
			[[ -n $seed ]] && args+=(--join "$seed")
			[[ -z $seed ]] && seed=127.0.0.1:$gport
		fi
		"$B" "${args[@]}" >"$log.s$i" 2>&1 &
		pid=$!
		STARTED+=("$pid") SERVER_PIDS+=("$pid") SERVER_URLS+=("http://127.0.0.1:$port")
		# The seed must answer before the others join it; they start together.
		((i > 1)) || wait_up "http://127.0.0.1:$port" /healthz "$pid" || return 1
	done
	# Ready when every node is, and sees all n alive.
	for ((i = 0; i < n; i++)); do
		wait_up "${SERVER_URLS[i]}" /readyz "${SERVER_PIDS[i]}" || return 1
	done
	((n > 1)) || return 0
	for ((i = 0; i < 200; i++)); do
		alive=0
		for u in "${SERVER_URLS[@]}"; do
			if [[ $(curl -fsS -m 1 "$u/cluster" 2>/dev/null | grep -o '"state":"alive"' | wc -l) -eq $n ]]; then
				alive=$((alive + 1))
			fi
		done
		((alive == n)) && return 0
		sleep 0.1
	done
	return 1
}

# stop_servers stops the target's processes newest first, one at a time,
# so that every node of a cluster leaves while its peers can still hear it.
stop_servers() {
	((${#SERVER_PIDS[@]})) || return 0
	local i
	for ((i = ${#SERVER_PIDS[@]} - 1; i >= 0; i--)); do stop_pids "${SERVER_PIDS[i]}"; done
	local keep=() p s gone
	for p in "${STARTED[@]}"; do
		gone=0
		for s in "${SERVER_PIDS[@]}"; do [[ $p == "$s" ]] && gone=1; done
		((gone)) || keep+=("$p")
	done
	STARTED=("${keep[@]}")
	SERVER_PIDS=() SERVER_URLS=()
}

# secs prints the seconds from $1 to $2 (EPOCHREALTIME values) to 0.1 s.
secs() {
	local a=${1/[.,]/} b=${2/[.,]/}
	local ms=$(((10#$b - 10#$a) / 1000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

join() {
	local IFS=,
	echo "$*"
}

# bench ROW POINT TARGET REP ARGS... starts the target fresh, runs
# `rumor bench --json ARGS` against it (every node's URL, every node's
# PID), appends the record to results.jsonl (as target $AS when set) and
# stops the target.
RUNS=0
bench() {
	local row=$1 point=$2 target=$3 rep=$4 code result name
	shift 4
	local as=${AS:-$target}
	name="$row${point:+-$point}-$target-$rep"
	RUNS=$((RUNS + 1))
	local t0=$EPOCHREALTIME
	if ! start_target "$target" "$OUT/logs/$name.server"; then
		printf '{"row":"%s","point":"%s","target":"%s","rep":%d,"exit":-1,"result":null}\n' "$row" "$point" "$as" "$rep" >>"$RESULTS"
		return 0
	fi
	local t1=$EPOCHREALTIME
	set +e
	"$B" bench --json --server "$(join "${SERVER_URLS[@]}")" --pid "$(join "${SERVER_PIDS[@]}")" "$@" \
		>"$TMP/out.json" 2>"$OUT/logs/$name.bench"
	code=$?
	set -e
	local t2=$EPOCHREALTIME
	stop_servers
	result=$(head -n 1 "$TMP/out.json")
	[[ $result == "{"* ]] || result=null
	printf '{"row":"%s","point":"%s","target":"%s","rep":%d,"exit":%d,"result":%s}\n' \
		"$row" "$point" "$as" "$rep" "$code" "$result" >>"$RESULTS"
	printf 'sitting: #%d row %s%s, %s, rep %d: exit %d; start %s s, bench %s s, stop %s s%s\n' "$RUNS" "$row" "${point:+ at $point}" "$target" "$rep" \
		"$code" "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t2" "$EPOCHREALTIME")" \
		"$([[ $result == null ]] && echo ", no result: see $OUT/logs/$name.bench")" >&2
}

# Sizes. Full: the issue's rows as docs/BENCHMARKS.md "Commands" runs them.
if [[ $QUICK == 1 ]]; then
	R1="--subscribers 50 --channels 1 --size 200 --count 2000 --duration 3s --drain 3s"
	R2="--subscribers 200 --channels 20 --size 200 --publishers 4 --rate 500 --count 500 --duration 3s --drain 3s"
	R3="--subscribers 300 --count 0 --hold 500ms --server-gc"
	R4="--subscribers 20 --channels 1 --size 200 --publishers 8 --duration 3s --drain 3s" R4SECS=1
	R5="--subscribers 20 --channels 4 --size 200 --publishers 4 --rate 200 --count 200 --duration 3s --drain 3s"
	SUBS="100 300 600" SUBS_RATE=200 SUBS_COUNT=200
	CHANS="1 10 50" CHANS_ARGS="--subscribers 100 --size 200 --publishers 8 --count 2000 --duration 3s --drain 3s"
	SIZES="200 4096 65536" SIZE_ARGS="--subscribers 20 --channels 4 --publishers 4 --rate 200 --count 200 --duration 3s --drain 3s"
	NODES="1 3 5" NODE_ARGS="--subscribers 30 --channels 3 --size 200 --publishers 15 --rate 200 --count 200 --duration 3s --drain 3s"
else
	R1="--subscribers 1000 --channels 1 --size 200 --count 1000000 --duration 10s --drain 5s"
	R2="--subscribers 10000 --channels 1000 --size 200 --publishers 16 --rate 2000 --count 40000 --duration 25s --drain 5s"
	R3="--subscribers 19000 --count 0 --hold 5s --server-gc"
	R4="--subscribers 100 --channels 1 --size 200 --publishers 32 --duration 10s --drain 5s" R4SECS=10
	R5="--subscribers 100 --channels 10 --size 200 --publishers 4 --rate 500 --count 10000 --duration 20s --drain 5s"
	# Subscribers: 10 per channel at a fixed 1,000 events/s, so that
	# deliveries stay at 10,000/s and only the number of streams (and
	# channels) grows; one channel would multiply the deliveries by the
	# subscribers and measure the two cores, not the streams.
	SUBS="1000 10000 19000" SUBS_RATE=1000 SUBS_COUNT=15000
	# Channels: 1,000 subscribers flat out, as row 1a: one channel fans
	# each publish out to 1,000 streams, 1,000 channels to one each, so
	# this is the cost per delivery as the fan-out per publish falls.
	CHANS="1 100 1000" CHANS_ARGS="--subscribers 1000 --size 200 --publishers 32 --count 1000000 --duration 10s --drain 5s"
	# Event size: row 5's shape (100 subscribers, 10 channels, 500
	# events/s): at 64 KiB that is 330 MB/s to the subscribers, which the
	# two cores still carry; flat out it would measure loopback copies.
	SIZES="200 4096 65536" SIZE_ARGS="--subscribers 100 --channels 10 --publishers 4 --rate 500 --count 6000 --duration 15s --drain 5s"
	# Cluster size: row 5's load, 150 subscribers and 15 publishers spread
	# over every node (both divide by 1, 3 and 5), so (N-1)/N of the
	# deliveries cross nodes; the bare loop alongside at every point.
	NODES="1 3 5" NODE_ARGS="--subscribers 150 --channels 10 --size 200 --publishers 15 --rate 500 --count 6000 --duration 15s --drain 5s"
fi

has_row() { [[ " $ROWS " == *" $1 "* ]]; }
TARGETS=${TARGETS:-"bare rumor rumor-3"}

for row in 1a 1b 2 3 5; do
	has_row "$row" || continue
	for ((rep = 1; rep <= REPS; rep++)); do
		for t in $TARGETS; do
			case $row in
			1a) bench 1a "" "$t" "$rep" --metrics=false $R1 --publishers 32 ;;
			1b) bench 1b "" "$t" "$rep" --metrics=false $R1 --publishers 4 ;;
			2) bench 2 "" "$t" "$rep" --metrics=false $R2 ;;
			3) [[ $t == dev-* ]] || bench 3 "" "$t" "$rep" $R3 ;; # one process: /metrics of every node is the same
			5) if [[ $t == rumor-3 || $t == dev-3 ]]; then
				bench 5 "" "$t" "$rep" --metrics=false $R5 --cross-node
			else
				bench 5 "" "$t" "$rep" --metrics=false $R5
			fi ;;
			esac
		done
	done
done

if has_row 4; then
	for rate in $LADDER; do
		for ((rep = 1; rep <= REPS; rep++)); do
			for t in $TARGETS; do
				bench 4 "$rate" "$t" "$rep" --metrics=false $R4 --rate "$rate" --count $((rate * R4SECS))
			done
		done
		if ! "$B" bench summarize --held "$rate" "$RESULTS" >/dev/null 2>&1; then
			echo "sitting: row 4: no target held $rate/s; the ladder stops" >&2
			break
		fi
	done
fi

for series in subscribers channels size nodes; do
	has_row "$series" || continue
	case $series in
	subscribers) points=$SUBS ;;
	channels) points=$CHANS ;;
	size) points=$SIZES ;;
	nodes) points=$NODES ;;
	esac
	for p in $points; do
		for ((rep = 1; rep <= REPS; rep++)); do
			for t in bare rumor; do
				case $series in
				subscribers) bench subscribers "$p" "$t" "$rep" --subscribers "$p" --channels $((p / 10)) --size 200 \
					--publishers 8 --rate "$SUBS_RATE" --count "$SUBS_COUNT" --duration 20s --drain 5s ;;
				channels) bench channels "$p" "$t" "$rep" --metrics=false $CHANS_ARGS --channels "$p" ;;
				size) bench size "$p" "$t" "$rep" --metrics=false $SIZE_ARGS --size "$p" ;;
				nodes)
					if [[ $t == rumor && $p != 1 ]]; then
						# Recorded as rumor: the point says how many nodes.
						AS=rumor bench nodes "$p" "rumor-$p" "$rep" --metrics=false $NODE_ARGS
					else
						bench nodes "$p" "$t" "$rep" --metrics=false $NODE_ARGS
					fi
					;;
				esac
			done
		done
	done
done

"$B" bench summarize "$RESULTS" >"$OUT/summary.md"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >>"$OUT/machine.txt"
cat "$OUT/summary.md"
echo "sitting: $RUNS runs; results in $RESULTS, summary in $OUT/summary.md" >&2
