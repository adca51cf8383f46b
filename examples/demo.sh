#!/usr/bin/env bash
# Granular's demo, end to end on this machine: builds Jaeger and the demo,
# starts Jaeger and two demo services on loopback (`messages`, which calls
# `inventory` for its downstream hop), sends ~10 s of load with every
# pathology in the mix, then prints the slow requests' trace ids and the
# span trees of two of them as Jaeger stored them. Stops everything it
# started on exit. Needs Go (for Jaeger) and Rust; no Docker, no network
# beyond the Go module proxy and crates.io for the first build.
#
#   DEMO_DURATION  seconds of load (default 10)
#   DEMO_RATE      requests per second (default 50)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
duration=${DEMO_DURATION:-10}
rate=${DEMO_RATE:-50}
mix="block=2%,blockfile=2%,alloc=2%,spawn_blocking=2%,downstream=2%,child=2%,report=2%"
kinds=(block blockfile alloc spawn_blocking downstream child report)
target=${CARGO_TARGET_DIR:-target}
bin="$target/release"
logs="$repo/target/demo"
mkdir -p "$logs"

started=$SECONDS
step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n==> [%d/6] %s (at %ds)\n' "$step_no" "$*" "$((SECONDS - started))"
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

step "starting demo-service: inventory (downstream) and messages"
# Starts demo-service as service $1 with extra VAR=value settings; sets demo_url.
start_demo() {
	local name=$1 log="$logs/$1.log"
	shift
	env "$@" DEMO_LISTEN=127.0.0.1:0 OTEL_SERVICE_NAME="$name" \
		OTEL_EXPORTER_OTLP_ENDPOINT="$otlp_grpc" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
		OTEL_BSP_SCHEDULE_DELAY=500 NO_COLOR=1 \
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

step "load-driver: ${duration}s at ${rate} req/s against messages, mix $mix"
"$bin/load-driver" --url "$messages" --duration "$duration" --rate "$rate" --mix "$mix" \
	>"$logs/load.txt" || die "load-driver failed (see above; its output is in $logs/load.txt)"
grep '^summary ' "$logs/load.txt"
for kind in "${kinds[@]}"; do
	grep -q "^slow $kind " "$logs/load.txt" ||
		echo "note: no '$kind' request in this run's random mix" >&2
done

step "slow requests and their traces in Jaeger"
grep '^slow ' "$logs/load.txt" || die "the load driver reported no slow request"
# The slowest `block` request (a worker blocked) and the slowest
# `downstream` one (two services, one trace).
pick() {
	grep "^slow $1 " "$logs/load.txt" |
		sed 's/.*trace_id=\([0-9a-f]*\) latency_ms=\([0-9]*\).*/\2 \1/' |
		sort -rn | head -n1 | cut -d' ' -f2
}
ids=()
for kind in block downstream; do
	id=$(pick "$kind")
	if [[ -n "$id" ]]; then
		ids+=("$id")
	fi
done
((${#ids[@]} > 0)) || ids=("$(grep -m1 '^slow ' "$logs/load.txt" | sed 's/.*trace_id=\([0-9a-f]*\).*/\1/')")
echo
echo "\$ trace-report --jaeger $JAEGER_QUERY ${ids[*]}"
"$bin/trace-report" --jaeger "$JAEGER_QUERY" "${ids[@]}" || die "trace-report failed"

echo
echo "done in $((SECONDS - started))s; logs in $logs. Look up any other trace with:"
echo "  $bin/trace-report --jaeger $JAEGER_QUERY <trace_id>   (Jaeger stops when this script exits)"
