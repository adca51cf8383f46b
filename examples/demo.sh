#!/usr/bin/env bash
# Granular's demo, end to end on this machine: builds Jaeger and the demo,
# starts Jaeger and two demo services on loopback (`messages`, which calls
# `inventory` for its downstream hop) with an SLO on GET /messages, sends
# ~10 s of load with every pathology in the mix, then prints, for one slow
# request per pathology, its span tree as Jaeger stored it: Granular's
# answer (granular.cause, .verdict, the time partition, .culprit,
# .artifact) and its span events. Stops everything it started on exit.
# Needs Go (for Jaeger) and Rust; no Docker, no network beyond the Go module
# proxy and crates.io for the first build.
#
#   DEMO_DURATION  seconds of load (default 10)
#   DEMO_RATE      requests per second (default 50)
#   DEMO_SLO       GRANULAR_SLO of both services (default "GET /messages=20ms,*=1s":
#                  a healthy /messages takes ~12 ms in a release build)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
duration=${DEMO_DURATION:-10}
rate=${DEMO_RATE:-50}
slo=${DEMO_SLO:-"GET /messages=20ms,*=1s"}
mix="block=2%,blockfile=2%,alloc=2%,spawn_blocking=2%,downstream=2%,child=2%,report=2%"
kinds=(block blockfile alloc spawn_blocking downstream child report)
target=${CARGO_TARGET_DIR:-target}
bin="$target/release"
# One directory per run (logs, load output, artifacts), so runs never mix
# files; target/demo/latest points at the newest, and only the last 5 are kept.
mkdir -p "$repo/target/demo"
logs=$(mktemp -d "$repo/target/demo/run-$(date +%Y%m%d-%H%M%S)-XXXX")
artifacts="$logs/artifacts"
mkdir -p "$artifacts"
ln -sfn "$(basename "$logs")" "$repo/target/demo/latest"
find "$repo/target/demo" -mindepth 1 -maxdepth 1 -type d -name 'run-*' | sort | head -n -5 |
	while read -r old; do rm -rf "$old"; done

started=$SECONDS
step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n==> [%d/7] %s (at %ds)\n' "$step_no" "$*" "$((SECONDS - started))"
}
die() {
	echo "examples/demo.sh: error: $*" >&2
	exit 1
}

pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits for a line starting with $2 in file $1, written by background
# process $3; prints the rest of the line.
wait_line() {
	local file=$1 prefix=$2 pid=$3 deadline=$((SECONDS + 60)) line
	while :; do
		line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
		if [[ -n "$line" ]]; then
			echo "${line#"$prefix"}"
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			echo "---- $file ----" >&2
			tail -n 30 "$file" >&2
			return 1
		fi
		sleep 0.2
	done
}

step "Jaeger: deploy/jaeger/build.sh"
deploy/jaeger/build.sh

step "cargo build --release -p granular-examples -p granular-e2e"
cargo build --release -p granular-examples -p granular-e2e

step "starting Jaeger on free loopback ports"
deploy/jaeger/run.sh >"$logs/jaeger-run.out" 2>&1 &
pids+=($!)
jaeger_line=$(wait_line "$logs/jaeger-run.out" "JAEGER_QUERY=" "${pids[-1]}") ||
	die "Jaeger did not start (output above; full output in $logs/jaeger-run.out)"
read -r query otlp_grpc _ <<<"JAEGER_QUERY=$jaeger_line"
export JAEGER_QUERY=${query#JAEGER_QUERY=}
otlp_grpc=${otlp_grpc#OTLP_GRPC=}
echo "Jaeger query API $JAEGER_QUERY, OTLP/gRPC $otlp_grpc"

step "starting demo-service: inventory (downstream) and messages, GRANULAR_SLO=\"$slo\""
# Starts demo-service as service $1 with extra VAR=value settings; sets demo_url.
start_demo() {
	local name=$1 log="$logs/$1.log"
	shift
	env "$@" DEMO_LISTEN=127.0.0.1:0 OTEL_SERVICE_NAME="$name" \
		OTEL_EXPORTER_OTLP_ENDPOINT="$otlp_grpc" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
		OTEL_BSP_SCHEDULE_DELAY=500 NO_COLOR=1 \
		GRANULAR_SLO="$slo" GRANULAR_DETAIL=events GRANULAR_ARTIFACT_DIR="$artifacts" \
		"$bin/demo-service" >"$log" 2>&1 &
	pids+=($!)
	demo_url=$(wait_line "$log" "listening on " "${pids[-1]}") ||
		die "demo-service $name did not start (output above; log $log)"
}
start_demo inventory
inventory=$demo_url
start_demo messages DEMO_DOWNSTREAM_URL="$inventory"
messages=$demo_url
echo "inventory at $inventory, messages at $messages (downstream hop -> inventory)"
grep -h 'granular: sources:' "$logs/inventory.log" | head -n1 | sed 's/^.*granular: /granular: /' || true

step "load-driver: ${duration}s at ${rate} req/s against messages, mix $mix"
"$bin/load-driver" --url "$messages" --duration "$duration" --rate "$rate" --mix "$mix" \
	>"$logs/load.txt" || die "load-driver failed (see above; its output is in $logs/load.txt)"
grep '^summary ' "$logs/load.txt"
for kind in "${kinds[@]}"; do
	grep -q "^slow $kind " "$logs/load.txt" ||
		echo "note: no '$kind' request in this run's random mix" >&2
done

step "slow requests the load driver made on purpose"
grep '^slow ' "$logs/load.txt" || die "the load driver reported no slow request"

step "Granular's answer in Jaeger: one slow request per pathology (trace-report)"
# What each pathology is, in words, for the headings.
describe() {
	case $1 in
	report) echo "a normal /messages request, with GET /report CPU hogs sent 3 ms behind it, one per worker" ;;
	block) echo "std::thread::sleep inside the async handler (a blocked worker)" ;;
	blockfile) echo "blocking file I/O and DNS inside the async handler" ;;
	downstream) echo "an HTTP call to a slow downstream service (inventory)" ;;
	alloc) echo "an allocation storm (granular::Alloc counts it)" ;;
	spawn_blocking) echo "spawn_blocking jobs queued on a saturated blocking pool" ;;
	child) echo "CPU work moved to a spawned child task that has no span" ;;
	*) echo "$1" ;;
	esac
}
# The median request of kind $1 in the load, "trace_id latency_ms": a typical
# one (the slowest of a kind is often one that a CPU hog also hit).
pick() {
	grep "^slow $1 " "$logs/load.txt" |
		sed 's/.*trace_id=\([0-9a-f]*\) latency_ms=\([0-9]*\).*/\2 \1/' |
		sort -n | awk '{line[NR] = $2 " " $1} END {if (NR) print line[int((NR + 1) / 2)]}'
}
# GET $1 (a path) from the messages service; prints the x-trace-id header.
trace_of_get() {
	local hostport=${messages#http://} header
	exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
	printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" "$hostport" >&3
	header=$(tr -d '\r' <&3 | grep -i -m1 '^x-trace-id:' || true)
	exec 3<&-
	echo "${header#*: }"
}
# Heavier requests for kinds whose load requests can stay under the SLO in a
# release build (64 MiB of allocations take ~2 ms).
heavier() {
	case $1 in
	alloc) echo "/messages?pathology=alloc&mib=1024" ;;
	child) echo "/messages?pathology=child&ms=60" ;;
	blockfile) echo "/messages?pathology=blockfile&mib=32" ;;
	*) echo "/messages?pathology=$1" ;;
	esac
}
shown=0
for kind in report block downstream spawn_blocking child alloc; do
	id='' latency=''
	read -r id latency <<<"$(pick "$kind")" || true
	echo
	echo "---- $kind: $(describe "$kind")"
	if [[ -z "${id:-}" ]]; then
		echo "(no '$kind' request in this run's random mix)"
		continue
	fi
	out=$("$bin/trace-report" --jaeger "$JAEGER_QUERY" "$id" 2>&1) || {
		echo "$out"
		die "trace-report $id failed"
	}
	if ! grep -q 'granular.cause = ' <<<"$out"; then
		# Not analysed: its span met the SLO (the client's latency includes
		# waiting to be accepted), or it was skipped (granular.skipped says why).
		path=$(heavier "$kind")
		why="its span met the SLO"
		grep -q 'SLO [0-9.]* ms ok\]' <<<"$out" || why="Granular did not analyse it"
		skipped=$(grep -o 'granular.skipped = [a-z_]*' <<<"$out" | head -n1 || true)
		[[ -z "$skipped" ]] || why="it was not analysed ($skipped)"
		echo "(the median '$kind' request of the load took ${latency} ms at the client, but $why;"
		echo " sending one heavier request: GET $path)"
		id=$(trace_of_get "$path")
		[[ -n "$id" ]] || die "GET $path returned no x-trace-id"
		out=$("$bin/trace-report" --jaeger "$JAEGER_QUERY" "$id" 2>&1) || {
			echo "$out"
			die "trace-report $id failed"
		}
	else
		echo "(the median '$kind' request of the load: ${latency} ms at the client)"
	fi
	echo "\$ trace-report $id"
	echo "$out"
	shown=$((shown + 1))
done
((shown > 0)) || die "no slow request to show"
echo
echo "Perfetto timelines of the analysed spans (granular.artifact links; open them in"
echo "https://ui.perfetto.dev): $(find "$artifacts" -name '*.perfetto-trace' | wc -l) files in $artifacts"

echo
echo "done in $((SECONDS - started))s; logs in $logs. Look up any other trace with:"
echo "  $bin/trace-report --jaeger $JAEGER_QUERY <trace_id>   (Jaeger stops when this script exits)"
