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
run_script=deploy/collector/run.sh
# shellcheck source=deploy/lib.sh
source "$repo/deploy/lib.sh"

[[ -n "${JAEGER_OTLP_GRPC:-}" ]] || {
	echo "deploy/collector/run.sh: error: set JAEGER_OTLP_GRPC to Jaeger's OTLP gRPC endpoint, e.g. JAEGER_OTLP_GRPC=http://127.0.0.1:4317" >&2
	exit 2
}
if [[ -z "${GRANULAR_COLLECTOR_BIN:-}" ]]; then
	"$repo/collector-plugin/build.sh" >&2
fi

export_free_ports GRANULAR_OTLP_GRPC_PORT GRANULAR_OTLP_HTTP_PORT GRANULAR_ARTIFACTS_PORT GRANULAR_METRICS_PORT
export GRANULAR_ARTIFACT_DIR="${GRANULAR_ARTIFACT_DIR:-$repo/target/granular-artifacts}"

start_logged granularcol "$bin" --config "$config"

# Receivers start last, so both OTLP ports accepting means the pipelines run.
ready() {
	port_open "$GRANULAR_OTLP_GRPC_PORT" && port_open "$GRANULAR_OTLP_HTTP_PORT"
}
wait_until_ready granularcol ready

echo "GRANULAR_OTLP_GRPC=http://127.0.0.1:$GRANULAR_OTLP_GRPC_PORT GRANULAR_OTLP_HTTP=http://127.0.0.1:$GRANULAR_OTLP_HTTP_PORT GRANULAR_ARTIFACTS=http://127.0.0.1:$GRANULAR_ARTIFACTS_PORT/artifacts/ GRANULAR_METRICS=http://127.0.0.1:$GRANULAR_METRICS_PORT/metrics"
echo "granularcol: running (pid $pid, config $config, log $log); Ctrl-C stops it" >&2

wait_for_exit granularcol
