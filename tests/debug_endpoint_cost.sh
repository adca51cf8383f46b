#!/bin/bash
# What the debug endpoint (GRANULAR_DEBUG_ADDR) costs: starts one demo-service from BIN_DIR
# (endpoint on or off), sends RATE requests/s of plain GET /messages for SECS seconds with
# load-driver (RATE 0: idle), optionally requesting /debug/granular/trace?seconds=60 in a
# loop meanwhile, and prints the CPU of the statistics thread (granular-debug-stats), the
# process's CPU (clock ticks) and the driver's latency percentiles. docs/benchmarks.md
# ("Debug endpoint") has the figures and the commands.
#
# usage: tests/debug_endpoint_cost.sh BIN_DIR DEBUG(0|1) SECS RATE CAPTURE(0|1)
set -u
BIN=$1; DEBUG=$2; SECS=$3; RATE=$4; CAP=$5
D=$(mktemp -d)
env_debug=""; [ "$DEBUG" = 1 ] && env_debug="GRANULAR_DEBUG_ADDR=127.0.0.1:0"
env DEMO_LISTEN=127.0.0.1:0 $env_debug GRANULAR_SLO="GET /messages=50ms,*=1s" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 GRANULAR_METRICS=off NO_COLOR=1 $BIN/demo-service > $D/svc.log 2>&1 &
PID=$!
for i in $(seq 50); do grep -q "listening on" $D/svc.log && break; sleep 0.1; done
URL=$(grep -o "listening on http://[0-9.:]*" $D/svc.log | cut -d' ' -f3)
DBG=$(grep -o "debug endpoint on http://[0-9.:]*" $D/svc.log | cut -d' ' -f4)
thread_cpu() { # ns of CPU of threads named $1
  local t=0; for f in /proc/$PID/task/*; do [ "$(cat $f/comm)" = "$1" ] && t=$((t + $(cut -d' ' -f1 $f/schedstat))); done; echo $t; }
proc_cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
sleep 1
s0=$(thread_cpu granular-debug-); p0=$(proc_cpu)
if [ "$RATE" = 0 ]; then sleep $SECS; else
  CP=""; if [ "$CAP" = 1 ]; then ( end=$((SECONDS+SECS)); n=0; while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "$DBG/debug/granular/trace?seconds=60"; n=$((n+1)); done; echo captures=$n > $D/cap ) & CP=$!; fi
  $BIN/load-driver --url $URL --rate $RATE --duration $SECS --mix "" --seed 1 --json $D/drv.json > /dev/null
  [ -n "$CP" ] && wait $CP
fi
s1=$(thread_cpu granular-debug-); p1=$(proc_cpu)
echo "debug=$DEBUG rate=$RATE secs=$SECS capture=$CAP stats_thread_cpu_ms=$(( (s1-s0)/1000000 )) process_cpu_ticks=$((p1-p0)) $(cat $D/cap 2>/dev/null) $( [ -f $D/drv.json ] && python3 -c "import json;d=json.load(open('$D/drv.json'));l=d['messages_latency'];print('count=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d'%(l['count'],l['p50_us'],l['p90_us'],l['p99_us'],l['max_us']))")"
[ "$DEBUG" = 1 ] && curl -s "$DBG/debug/granular/?format=json" | python3 -c "import json,sys;d=json.load(sys.stdin);print('  endpoint: missed',d['missed'],'ops',[(o['name'],o['count']) for o in d['operations']][:2])"
kill $PID; wait $PID 2>/dev/null; rm -rf $D
