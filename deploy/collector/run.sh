#!/usr/bin/env bash
# Runs granularcol with deploy/collector/single.yaml (or $GRANULAR_CONFIG) on
# free loopback ports until interrupted, exporting to the Jaeger at
# $JAEGER_OTLP_GRPC (host:port or http://host:port, e.g. the OTLP_GRPC that
# deploy/jaeger/run.sh prints). Once it is ready, prints
#   GRANULAR_OTLP_GRPC=http://127.0.0.1:P GRANULAR_OTLP_HTTP=http://127.0.0.1:P GRANULAR_ARTIFACTS=http://127.0.0.1:P/artifacts/ GRANULAR_METRICS=http://127.0.0.1:P/metrics
# on stdout. Ports already set in GRANULAR_OTLP_GRPC_PORT, GRANULAR_OTLP_HTTP_PORT,
# GRANULAR_ARTIFACTS_PORT or GRANULAR_METRICS_PORT are used as given; the other
# variables of single.yaml (GRANULAR_SLO, GRANULAR_DECISION_WAIT, GRANULAR_HEALTHY,
# GRANULAR_ARTIFACT_DIR, GRANULAR_LOG_LEVEL) pass through.
# Stops the collector when this script exits or is signalled. Builds it first if needed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="${GRANULAR_COLLECTOR_BIN:-$repo/.cache/bin/granularcol}"
config="${GRANULAR_CONFIG:-$here/single.yaml}"
ready_timeout=60

[[ -n "${JAEGER_OTLP_GRPC:-}" ]] || {
	echo "deploy/collector/run.sh: error: set JAEGER_OTLP_GRPC to Jaeger's OTLP gRPC endpoint, e.g. JAEGER_OTLP_GRPC=http://127.0.0.1:4317" >&2
	exit 2
}
if [[ -z "${GRANULAR_COLLECTOR_BIN:-}" ]]; then
	"$repo/collector-plugin/build.sh" >&2
fi

taken=" "
# A loopback port nobody listens on (and not handed out already).
free_port() {
	local port
	while :; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		[[ "$taken" == *" $port "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}
for var in GRANULAR_OTLP_GRPC_PORT GRANULAR_OTLP_HTTP_PORT GRANULAR_ARTIFACTS_PORT GRANULAR_METRICS_PORT; do
	if [[ -z "${!var:-}" ]]; then
		port=$(free_port)
		taken+="$port "
		export "$var=$port"
	fi
done
export GRANULAR_ARTIFACT_DIR="${GRANULAR_ARTIFACT_DIR:-$repo/target/granular-artifacts}"

log_dir="$repo/target/e2e-logs"
mkdir -p "$log_dir"
log="$log_dir/granularcol-run-$$.log"

"$bin" --config "$config" >"$log" 2>&1 &
pid=$!
# shellcheck disable=SC2329 # invoked by the EXIT trap
stop() {
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
	echo "deploy/collector/run.sh: error: $*" >&2
	echo "---- last lines of $log ----" >&2
	tail -n 40 "$log" >&2
	exit 1
}

# Receivers start last, so both OTLP ports accepting means the pipelines run.
ready() {
	(exec 3<>"/dev/tcp/127.0.0.1/$GRANULAR_OTLP_GRPC_PORT") 2>/dev/null &&
		(exec 3<>"/dev/tcp/127.0.0.1/$GRANULAR_OTLP_HTTP_PORT") 2>/dev/null
}
deadline=$((SECONDS + ready_timeout))
until ready; do
	kill -0 "$pid" 2>/dev/null || fail "granularcol exited during startup"
	((SECONDS < deadline)) || fail "granularcol not ready after ${ready_timeout}s"
	sleep 0.2
done

echo "GRANULAR_OTLP_GRPC=http://127.0.0.1:$GRANULAR_OTLP_GRPC_PORT GRANULAR_OTLP_HTTP=http://127.0.0.1:$GRANULAR_OTLP_HTTP_PORT GRANULAR_ARTIFACTS=http://127.0.0.1:$GRANULAR_ARTIFACTS_PORT/artifacts/ GRANULAR_METRICS=http://127.0.0.1:$GRANULAR_METRICS_PORT/metrics"
echo "granularcol: running (pid $pid, config $config, log $log); Ctrl-C stops it" >&2

status=0
wait "$pid" || status=$?
fail "granularcol exited unexpectedly (status $status)"
