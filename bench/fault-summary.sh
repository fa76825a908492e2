#!/usr/bin/env bash
# bench/fault-summary.sh FILE prints the results of bench/fault.sh as
# markdown: per point the median and range (min–max) over the rounds, and
# every ratio taken within a round (the fault run against that round's
# no-fault run, three processes against that round's bare loop, N nodes
# against that round's 3 nodes), then its median and range.
set -euo pipefail
[[ $# == 1 && -r $1 ]] || { echo "usage: bench/fault-summary.sh results.jsonl" >&2; exit 2; }

jq -rs '
def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def r(d): if . == null then "—" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
def stat(d): map(select(. != null)) | if length == 0 then "—" else "\(median | r(d)) (\(min | r(d))–\(max | r(d)))" end;
def ok: .result != null;
def p99: .result.latency.p99;
# ratio(a; b): per round, value of runs a over runs b (f picks the value)
def ratios(a; b; f): . as $all | [ $all[] | select(a and ok) | . as $x
	| ($all[] | select(b and ok and .rep == $x.rep)) as $y
	| if ($y | f) > 0 then ($x | f) / ($y | f) else null end ];
def loads: map(.load | split(" ")[0] | tonumber) | "\(min)–\(max)";
def faults: map(select(.row == "fault"));
def scale: map(select(.row == "scale"));
def bad: map(select(ok) | .result | (.lost + .duplicated + .outOfOrder + .misrouted)) | add // 0;

def net: if .result.published > 0 and .relay.idleSeconds > 0
	then (.relay.segments - .relay.idleSegments / .relay.idleSeconds * .relay.seconds) / .result.published else null end;

. as $all
| ($all | map(.binary // "rumor") | unique | map(select(. != null))) as $lbls
| ($all | map(select(.target == "bare" or .target == "bare-3"))) as $bare
| $lbls[] as $lbl
| ($all | map(select(.target != "bare" and .target != "bare-3" and (.binary // "rumor") == $lbl))) as $mine
| ($mine + $bare | faults) as $f | ($mine | scale) as $s
| (if ($lbls | length) > 1 then "## Binary: \($lbl)\n" else empty end),
  (if ($f | length) > 0 then
	"### A slow peer (three `rumor serve` processes; 300 events/s on s1, 100 subscribers on s2)\n",
	"| run | rounds | p50 ms | p90 ms | p99 ms | max ms | p99 / same round no fault | load (1 min) |",
	"|---|---:|---|---|---|---|---|---|",
	( [ {n: "bare loop, one process (same load)", point: "", target: "bare"},
	    {n: "bare cluster, three processes relaying (same load)", point: "", target: "bare-3"},
	    {n: "no fault", point: "none", target: "rumor-3"},
	    {n: "s3 frozen \($f | map(select(.point == "frozen") | .fault.seconds) | median | r(1)) s", point: "frozen", target: "rumor-3"},
	    {n: "s3 throttled (100 ms in 500 ms)", point: "throttled", target: "rumor-3"} ][] as $p
	  | ($f | map(select(.point == $p.point and .target == $p.target))) as $runs
	  | select($runs | length > 0)
	  | ($runs | map(select(ok))) as $okr
	  | "| \($p.n) | \($okr | length) | \($okr | map(.result.latency.p50) | stat(2)) | \($okr | map(.result.latency.p90) | stat(2)) | \($okr | map(p99) | stat(2)) | \($okr | map(.result.latency.max) | stat(1)) | \(if $p.point == "frozen" or $p.point == "throttled" then ($f | ratios(.point == $p.point; .point == "none"; p99) | stat(2)) else "—" end) | \($runs | loads) |"),
	"",
	"Cross-node p99 (no fault, three processes) / bare loop p99, per round: **\($f | ratios(.point == "none"; .target == "bare"; p99) | stat(2))**",
	(if ($f | map(select(.target == "bare-3")) | length) > 0 then
	"",
	"Bare cluster p99 / bare loop p99, per round (what the hop costs here): **\($f | ratios(.target == "bare-3"; .target == "bare"; p99) | stat(2))**; cross-node p99 (no fault) / bare cluster p99 (what rumor adds): **\($f | ratios(.point == "none"; .target == "bare-3"; p99) | stat(2))**"
	else empty end),
	"",
	"\($f | length) runs; events lost + duplicated + out of order + misrouted: \($f | bad); failed runs: \($f | map(select(.exit != 0)) | length).",
	""
  else empty end),
  (if ($s | length) > 0 then
	"### Cluster size (`rumor dev --nodes N`; subscribers and publishers on every node, 300 events/s)\n",
	"| nodes | rounds | p50 ms | p90 ms | p99 ms | p99 / same round 3 nodes | CPU µs per event | relay writes per event | of which not idle | relay bytes per event | idle relay writes/s | load (1 min) |",
	"|---:|---:|---|---|---|---|---|---|---|---|---|---|",
	( $s | map(.point) | unique | sort_by(tonumber)[] as $n
	  | ($s | map(select(.point == $n))) as $runs
	  | ($runs | map(select(ok))) as $okr
	  | "| \($n) | \($okr | length) | \($okr | map(.result.latency.p50) | stat(2)) | \($okr | map(.result.latency.p90) | stat(2)) | \($okr | map(p99) | stat(2)) | \($s | ratios(.point == $n; .point == "3"; p99) | stat(2)) | \($okr | map(if .result.serverCPU and .result.published > 0 then .result.serverCPU / .result.published * 1e6 else null end) | stat(0)) | \($okr | map(if .result.published > 0 then .relay.segments / .result.published else null end) | stat(2)) | \($okr | map(net) | stat(2)) | \($okr | map(if .result.published > 0 then .relay.bytes / .result.published else null end) | stat(0)) | \($okr | map(if .relay.idleSeconds > 0 then .relay.idleSegments / .relay.idleSeconds else null end) | stat(0)) | \($runs | loads) |"),
	"",
	"\($s | length) runs; events lost + duplicated + out of order + misrouted: \($s | bad); failed runs: \($s | map(select(.exit != 0)) | length).",
	""
  else empty end)
' "$1"
