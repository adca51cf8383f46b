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
run_script=deploy/jaeger/run.sh
# shellcheck source=deploy/lib.sh
source "$repo/deploy/lib.sh"

"$here/build.sh" >&2

export_free_ports JAEGER_QUERY_HTTP_PORT JAEGER_QUERY_GRPC_PORT JAEGER_OTLP_GRPC_PORT JAEGER_OTLP_HTTP_PORT

start_logged jaeger "$bin" --config "$here/config.yaml"

# Ready when the query API answers 200 and the OTLP gRPC port accepts.
query_ok() {
	local status
	exec 3<>"/dev/tcp/127.0.0.1/$JAEGER_QUERY_HTTP_PORT" || return 1
	printf 'GET /api/services HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	read -r -t 2 _ status _ <&3 || status=
	exec 3>&-
	[[ "$status" == 200 ]]
}
ready() {
	query_ok 2>/dev/null && port_open "$JAEGER_OTLP_GRPC_PORT" && port_open "$JAEGER_OTLP_HTTP_PORT"
}
wait_until_ready jaeger ready

echo "JAEGER_QUERY=http://127.0.0.1:$JAEGER_QUERY_HTTP_PORT OTLP_GRPC=http://127.0.0.1:$JAEGER_OTLP_GRPC_PORT OTLP_HTTP=http://127.0.0.1:$JAEGER_OTLP_HTTP_PORT"
echo "jaeger: running (pid $pid, log $log); Ctrl-C stops it" >&2

wait_for_exit jaeger
