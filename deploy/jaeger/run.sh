#!/usr/bin/env bash
# Runs Jaeger (deploy/jaeger/config.yaml: memory storage, OTLP in, query API
# out) on free loopback ports until interrupted. Once it is ready, prints
#   JAEGER_QUERY=http://127.0.0.1:P OTLP_GRPC=http://127.0.0.1:P OTLP_HTTP=http://127.0.0.1:P
# on stdout. Ports already set in JAEGER_QUERY_HTTP_PORT, JAEGER_QUERY_GRPC_PORT,
# JAEGER_OTLP_GRPC_PORT or JAEGER_OTLP_HTTP_PORT are used as given.
# Stops Jaeger when this script exits or is signalled. Builds it first if needed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin="${GRANULAR_JAEGER_BIN:-$repo/.cache/bin/jaeger}"
ready_timeout=60

"$here/build.sh" >&2

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
for var in JAEGER_QUERY_HTTP_PORT JAEGER_QUERY_GRPC_PORT JAEGER_OTLP_GRPC_PORT JAEGER_OTLP_HTTP_PORT; do
	if [[ -z "${!var:-}" ]]; then
		port=$(free_port)
		taken+="$port "
		export "$var=$port"
	fi
done

log_dir="$repo/target/e2e-logs"
mkdir -p "$log_dir"
log="$log_dir/jaeger-run-$$.log"

"$bin" --config "$here/config.yaml" >"$log" 2>&1 &
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
	echo "deploy/jaeger/run.sh: error: $*" >&2
	echo "---- last lines of $log ----" >&2
	tail -n 40 "$log" >&2
	exit 1
}

# Ready when the query API answers 200 and the OTLP gRPC port accepts.
query_ok() {
	local status
	exec 3<>"/dev/tcp/127.0.0.1/$JAEGER_QUERY_HTTP_PORT" || return 1
	printf 'GET /api/services HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	read -r -t 2 _ status _ <&3 || status=
	exec 3>&-
	[[ "$status" == 200 ]]
}
otlp_ok() {
	(exec 3<>"/dev/tcp/127.0.0.1/$JAEGER_OTLP_GRPC_PORT") 2>/dev/null &&
		(exec 3<>"/dev/tcp/127.0.0.1/$JAEGER_OTLP_HTTP_PORT") 2>/dev/null
}
deadline=$((SECONDS + ready_timeout))
until query_ok 2>/dev/null && otlp_ok; do
	kill -0 "$pid" 2>/dev/null || fail "jaeger exited during startup"
	((SECONDS < deadline)) || fail "jaeger not ready after ${ready_timeout}s"
	sleep 0.2
done

echo "JAEGER_QUERY=http://127.0.0.1:$JAEGER_QUERY_HTTP_PORT OTLP_GRPC=http://127.0.0.1:$JAEGER_OTLP_GRPC_PORT OTLP_HTTP=http://127.0.0.1:$JAEGER_OTLP_HTTP_PORT"
echo "jaeger: running (pid $pid, log $log); Ctrl-C stops it" >&2

status=0
wait "$pid" || status=$?
fail "jaeger exited unexpectedly (status $status)"
