#!/usr/bin/env bash
# bench/mercure.sh compares the two faces of a rumor node on the same
# workload (issue #12): row 1b of docs/BENCHMARKS.md (1,000 subscribers on
# one channel, 200-byte events, 4 publishers, flat out), once through
# /channels and once through the Mercure face (`rumor bench --mercure`:
# GET /.well-known/mercure?topic=… and POST form updates), alternating the
# two, REPS times each, every run against a fresh server started with the
# same flags (--mercure on for both), and prints the medians and ranges.
#
#   bash bench/mercure.sh                    # 3 rounds, one node
#   REPS=5 NODES=3 bash bench/mercure.sh     # three processes, clients spread over them
#
# Knobs (environment): REPS (3), NODES (1), OUT (bench-results/mercure-<UTC
# time>), RUMOR (a rumor binary instead of building ./cmd/rumor), ARGS (the
# workload; row 1b's by default). Results: $OUT/results.jsonl, one record a
# run ({"face", "rep", "exit", "result"}), and logs/. Stops only the
# processes it started. Needs bash, go, curl, jq, openssl and Linux.
set -euo pipefail

REPS=${REPS:-3}
NODES=${NODES:-1}
OUT=${OUT:-bench-results/mercure-$(date -u +%Y%m%dT%H%M%SZ)}
ARGS=${ARGS:-"--subscribers 1000 --channels 1 --size 200 --publishers 4 --count 1000000 --duration 10s --drain 5s"}
cd "$(dirname "$0")/.."
[[ $REPS =~ ^[1-9][0-9]?$ ]] || { echo "mercure.sh: REPS=$REPS: want 1 to 99" >&2; exit 2; }
[[ $NODES =~ ^[1-9]$ ]] || { echo "mercure.sh: NODES=$NODES: want 1 to 9" >&2; exit 2; }
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.jsonl
[[ ! -s $RESULTS ]] || { echo "mercure.sh: $RESULTS already holds results" >&2; exit 2; }

TMP=$(mktemp -d)
STARTED=()
cleanup() {
	local p
	for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${STARTED[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

B=${RUMOR:-}
if [[ -z $B ]]; then
	B=$TMP/rumor
	go build -o "$B" ./cmd/rumor
fi

# The publishers' token: HS256 over {"mercure":{"publish":["*"]}}, signed
# with the key every server gets.
KEY=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
H=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
C=$(printf '{"mercure":{"publish":["*"]}}' | b64url)
TOKEN="$H.$C.$(printf '%s' "$H.$C" | openssl dgst -sha256 -hmac "$KEY" -binary | b64url)"

USED=" "
free_port() {
	local p i hex
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		[[ $USED == *" $p "* ]] && continue
		hex=$(printf ':%04X ' "$p")
		cat /proc/net/tcp /proc/net/udp /proc/net/tcp6 /proc/net/udp6 2>/dev/null | awk '{print $2}' | grep -qi -- "${hex% }\$" && continue
		USED+="$p "
		echo "$p"
		return 0
	done
	return 1
}

wait_up() {
	local i
	for ((i = 0; i < 150; i++)); do
		kill -0 "$2" 2>/dev/null || return 1
		curl -fsS -m 1 -o /dev/null "$1/readyz" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

PIDS=() URLS=()
start_servers() {
	local i port gport seed="" gkey
	gkey=$(head -c 32 /dev/urandom | base64)
	PIDS=() URLS=()
	for ((i = 1; i <= NODES; i++)); do
		port=$(free_port)
		local args=(serve --http-addr "127.0.0.1:$port" --node-name "m$i" --max-streams-per-client 0 --log-level warn
			--mercure --mercure-publisher-key "$KEY" --mercure-subscriber-key "$KEY" --mercure-anonymous)
		if ((NODES > 1)); then
			gport=$(free_port)
			args+=(--gossip-addr "127.0.0.1:$gport" --gossip-key "$gkey" --cluster-label "mercure-$$")
			[[ -n $seed ]] && args+=(--join "$seed")
			[[ -z $seed ]] && seed=127.0.0.1:$gport
		fi
		"$B" "${args[@]}" >"$1.m$i" 2>&1 &
		PIDS+=("$!") URLS+=("http://127.0.0.1:$port")
		STARTED+=("$!")
		wait_up "http://127.0.0.1:$port" "$!" || return 1
	done
	# With several nodes, wait until every node sees them all alive.
	for ((i = 0; i < 200 && NODES > 1; i++)); do
		local alive=0 u
		for u in "${URLS[@]}"; do
			[[ $(curl -fsS -m 1 "$u/cluster" 2>/dev/null | grep -o '"state":"alive"' | wc -l) -eq $NODES ]] && alive=$((alive + 1))
		done
		((alive == NODES)) && return 0
		sleep 0.1
	done
}

stop_servers() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		kill -TERM "${PIDS[i]}" 2>/dev/null || true
		wait "${PIDS[i]}" 2>/dev/null || true
	done
	PIDS=()
}

run() {
	local face=$1 rep=$2 code extra=()
	[[ $face == mercure ]] && extra=(--mercure --mercure-token "$TOKEN")
	local name="$face-$rep"
	start_servers "$OUT/logs/$name.server" || { echo "mercure.sh: servers did not start" >&2; exit 1; }
	local servers pids
	servers=$(IFS=,; echo "${URLS[*]}")
	pids=$(IFS=,; echo "${PIDS[*]}")
	set +e
	# shellcheck disable=SC2086
	"$B" bench --json --quiet --metrics=false --server "$servers" --pid "$pids" $ARGS "${extra[@]}" >"$TMP/out.json" 2>"$OUT/logs/$name.bench"
	code=$?
	set -e
	stop_servers
	local result
	result=$(head -n 1 "$TMP/out.json")
	[[ $result == "{"* ]] || result=null
	printf '{"face":"%s","nodes":%d,"rep":%d,"exit":%d,"result":%s}\n' "$face" "$NODES" "$rep" "$code" "$result" >>"$RESULTS"
	printf 'mercure.sh: %s rep %d: exit %d, %s\n' "$face" "$rep" "$code" \
		"$(jq -r 'if . == null then "no result" else "\(.deliveryRate | floor) deliveries/s, \(.serverCPUPerDelivery * 100 | round / 100) µs CPU/delivery, p99 \(.latency.p99 * 100 | round / 100) ms" end' <<<"$result")" >&2
}

{
	date -u
	uname -a
	nproc
	uptime
	"$B" version 2>/dev/null || true
} >"$OUT/machine.txt"
for ((rep = 1; rep <= REPS; rep++)); do
	# Alternate which face goes first, so that neither always follows the other.
	if ((rep % 2)); then run channels "$rep"; run mercure "$rep"; else run mercure "$rep"; run channels "$rep"; fi
done

# Medians and ranges, per face, and the ratios of the medians.
jq -rs '
	def med: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def stat(f): map(f) | "\(med | . * 100 | round / 100) (\(min | . * 100 | round / 100)–\(max | . * 100 | round / 100))";
	group_by(.face) | map({face: .[0].face, runs: length, ok: (map(select(.exit == 0)) | length),
		rate: (map(.result) | stat(.deliveryRate)), cpu: (map(.result) | stat(.serverCPUPerDelivery)),
		p50: (map(.result) | stat(.latency.p50)), p99: (map(.result) | stat(.latency.p99)),
		mrate: (map(.result.deliveryRate) | med), mcpu: (map(.result.serverCPUPerDelivery) | med)}) as $f
	| ($f | map({(.face): .}) | add) as $by
	| "| face | runs (ok) | deliveries/s | server CPU per delivery (µs) | p50 (ms) | p99 (ms) |",
	  "|---|---|---|---|---|---|",
	  ($f[] | "| \(.face) | \(.runs) (\(.ok)) | \(.rate) | \(.cpu) | \(.p50) | \(.p99) |"),
	  "",
	  "mercure / channels: deliveries/s \($by.mercure.mrate / $by.channels.mrate | . * 100 | round / 100), CPU per delivery \($by.mercure.mcpu / $by.channels.mcpu | . * 100 | round / 100)"
' "$RESULTS" | tee "$OUT/summary.md"
