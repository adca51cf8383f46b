#!/usr/bin/env bash
# Granular's demo, end to end on this machine. Builds Jaeger and the granularcol
# Collector from their Go modules and the workspace (the tokio_unstable debug
# build the test suite also uses), then runs the real pipeline on loopback:
#
#   load-driver -> messages -> inventory    (demo-service twice, GRANULAR_SLO set)
#   messages, inventory --OTLP: spans + Perfetto artifacts--> granularcol -> Jaeger
#
# granularcol's `granular` processor decides per trace (violating traces whole,
# with a rollup on the root span; healthy ones stripped of Granular detail) and
# its `granular_artifacts` extension stores the Perfetto artifacts the services
# send with GRANULAR_ARTIFACTS=otlp. After ~10 s of load with every pathology in
# the mix, prints for each pathology one slow request's span tree as Jaeger
# returns it: Granular's answer (granular.cause, .verdict, the time partition,
# .culprit, .artifact, the collector's granular.trace.* rollup) and its span
# events. Build output goes to log files; the terminal gets one line per step.
# Needs Go and Rust; no Docker, no network beyond the Go module proxy and
# crates.io for the first build.
#
#   DEMO_DURATION  seconds of load (default 10)
#   DEMO_RATE      requests per second (default 50)
#   DEMO_SLO       SLO rules of both services and of granularcol (default
#                  "GET /messages=20ms,*=1s": a healthy /messages takes ~14 ms)
#   DEMO_STABLE=1  run the stable build (target/debug) instead of the
#                  --cfg tokio_unstable one (target/unstable/debug), to see its
#                  answers and what it cannot see
#   DEMO_KEEP=1    keep Jaeger, granularcol and the services running after the
#                  report, printing how to query them, until Ctrl-C (default: all
#                  stop when the report is done)
#   CARGO_TARGET_DIR, RUSTFLAGS  as for tests/run.sh (the unstable build goes to
#                  $CARGO_TARGET_DIR/unstable, with --cfg tokio_unstable added)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

die() {
	echo "examples/demo.sh: error: $*" >&2
	exit 1
}
# flag NAME: the value of boolean variable NAME (0 when unset).
flag() {
	case ${!1:-0} in
	0 | '') echo 0 ;;
	1) echo 1 ;;
	*) die "$1=${!1} is invalid: expected 1 (on) or 0 (off)" ;;
	esac
}

duration=${DEMO_DURATION:-10}
rate=${DEMO_RATE:-50}
slo=${DEMO_SLO:-"GET /messages=20ms,*=1s"}
stable=$(flag DEMO_STABLE)
keep=$(flag DEMO_KEEP)
[[ "$duration" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "DEMO_DURATION=$duration is invalid: expected seconds, e.g. 10"
[[ "$rate" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "DEMO_RATE=$rate is invalid: expected requests per second, e.g. 50"
kinds=(report block blockfile downstream spawn_blocking child alloc)
mix="block=2%,blockfile=2%,alloc=2%,spawn_blocking=2%,downstream=2%,child=2%,report=2%"
# The collector judges a trace this long after its first span arrives.
decision_wait=2s

# Same target dirs and flags as tests/run.sh, so the suite and the demo share
# their builds.
stable_target=${CARGO_TARGET_DIR:-target}
if ((stable)); then
	target=$stable_target
	rustflags=${RUSTFLAGS:-}
else
	target=$stable_target/unstable
	rustflags="${RUSTFLAGS:+$RUSTFLAGS }--cfg tokio_unstable"
fi
bin="$target/debug"
[[ "$bin" == /* ]] || bin="$repo/$bin"

# One directory per run (build logs, service logs, load output, artifacts), so
# runs never mix files; target/demo/latest points at the newest. Only the last
# 5 are kept, and never one whose processes still run (DEMO_KEEP=1).
mkdir -p "$repo/target/demo"
logs=$(mktemp -d "$repo/target/demo/run-$(date +%Y%m%d-%H%M%S)-XXXX")
artifacts="$logs/artifacts"
pid_file="$logs/pids"
ln -sfn "$(basename "$logs")" "$repo/target/demo/latest"
still_running() {
	local pid
	[[ -f "$1/pids" ]] || return 1
	while read -r pid; do
		kill -0 "$pid" 2>/dev/null && return 0
	done <"$1/pids"
	return 1
}
find "$repo/target/demo" -mindepth 1 -maxdepth 1 -type d -name 'run-*' | sort | head -n -5 |
	while read -r old; do still_running "$old" || rm -rf "$old"; done
# Paths as printed: relative to the repository when inside it.
show() { echo "${1#"$repo/"}"; }

started=$SECONDS
step_no=0
steps=8
step_start=0
step_title=
# begin TEXT: starts a progress line "[n/8] TEXT...".
begin() {
	step_no=$((step_no + 1))
	step_start=$SECONDS
	step_title=${*%% (*}
	printf '[%d/%d] %s... ' "$step_no" "$steps" "$*"
}
# finish WORD [NOTE]: ends the progress line: "done in 12 s".
finish() {
	echo "$1 in $((SECONDS - step_start)) s${2:+ ($2)}"
}
# run_logged LOG COMMAND...: runs COMMAND with its output in LOG, adding the
# elapsed time to the progress line every 30 s; on failure ends the progress
# line, shows the log's tail and exits.
run_logged() {
	local log=$1 status=0
	shift
	(
		while sleep 1; do
			(((SECONDS - step_start) % 30)) || printf '%d s... ' "$((SECONDS - step_start))"
		done
	) &
	ticker=$!
	"$@" >"$log" 2>&1 || status=$?
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	ticker=''
	if ((status != 0)); then
		echo "FAILED after $((SECONDS - step_start)) s (exit $status)"
		echo "---- last lines of $(show "$log") ----" >&2
		tail -n 30 "$log" >&2
		die "$step_title failed; full output in $(show "$log")"
	fi
}

pids=()
ticker=''
cleanup() {
	local pid
	[[ -z "$ticker" ]] || kill "$ticker" 2>/dev/null || true
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'echo; echo "examples/demo.sh: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# wait_line FILE PREFIX PID: waits for a line starting with PREFIX in FILE,
# written by background process PID, and prints the rest of the line. Fails
# if PID exits first or after 60 s.
wait_line() {
	local file=$1 prefix=$2 pid=$3 deadline=$((SECONDS + 60)) line
	while :; do
		line=$(grep -m1 "^$prefix" "$file" 2>/dev/null || true)
		if [[ -n "$line" ]]; then
			echo "${line#"$prefix"}"
			return
		fi
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.2
	done
}
# fail_start WHAT LOG: ends the progress line, shows LOG's tail and exits.
fail_start() {
	echo "FAILED after $((SECONDS - step_start)) s"
	echo "---- last lines of $(show "$2") ----" >&2
	tail -n 30 "$2" >&2
	die "$1 did not start (full output in $(show "$2"))"
}
# start_server WHAT LOG PREFIX COMMAND...: starts COMMAND in the background,
# output in LOG, and waits for its line starting with PREFIX; sets
# server_line to the rest of that line. The deploy/*/run.sh scripts pick free
# ports before the server binds them, so a port another process takes in
# between gets two more tries on new ports.
start_server() {
	local what=$1 log=$2 prefix=$3 attempt pid
	shift 3
	for attempt in 1 2 3; do
		"$@" >"$log" 2>&1 &
		pid=$!
		pids+=("$pid")
		server_line=$(wait_line "$log" "$prefix" "$pid") && return
		grep -q 'address already in use' "$log" || break
		mv "$log" "$log.$attempt"
	done
	fail_start "$what" "$log"
}

# http_get URL [HEADERS_ONLY]: GET of an http://127.0.0.1:PORT/... URL with
# bash's /dev/tcp (no curl needed); prints the answer, CRs removed, or only
# its status line and headers when HEADERS_ONLY is 1.
http_get() {
	local rest=${1#http://} headers_only=${2:-0} hostport path
	hostport=${rest%%/*}
	path=/${rest#*/}
	[[ "$rest" == */* ]] || path=/
	exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || return 1
	printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$hostport" >&3
	if ((headers_only)); then
		tr -d '\r' <&3 | sed '/^$/q'
	else
		tr -d '\r' <&3
	fi
	exec 3<&-
}
# header NAME: the value of header NAME in the http_get headers on stdin.
header() {
	grep -i -m1 "^$1:" | sed 's/^[^:]*: *//' || true
}

if ((stable)); then
	echo "Build: stable tokio (DEMO_STABLE=1), $(show "$bin"). What this build cannot see:"
	echo "  individual task polls and spawns, and wake-to-poll latency: scheduler wait is estimated"
	echo "  from worker parks and span entries (granular.scheduler_wait.estimated = true), culprits"
	echo "  are named by span only, and CPU work in a spawned task without a span is not attributed"
	echo "  to its request (the 'child' pathology reads as idle). Without DEMO_STABLE the demo runs"
	echo "  the --cfg tokio_unstable build, which sees all of it."
else
	echo "Build: RUSTFLAGS=\"$rustflags\" (full detail), $(show "$bin");"
	echo "  DEMO_STABLE=1 runs the stable build instead, to show its answers and what it cannot see."
fi
echo "Logs of this run: $(show "$logs")"

# ---- builds: output to log files, one line each on the terminal
begin "building Jaeger (go, log: $(show "$logs/build-jaeger.log"))"
run_logged "$logs/build-jaeger.log" deploy/jaeger/build.sh
if grep -q 'is up to date\|using GRANULAR_JAEGER_BIN' "$logs/build-jaeger.log"; then
	finish "done" "up to date"
else
	finish "done"
fi

if [[ -n "${GRANULAR_COLLECTOR_BIN:-}" ]]; then
	begin "building the Collector (granularcol)"
	[[ -x "$GRANULAR_COLLECTOR_BIN" ]] ||
		die "GRANULAR_COLLECTOR_BIN=$GRANULAR_COLLECTOR_BIN is not an executable file"
	finish skipped "using GRANULAR_COLLECTOR_BIN=$GRANULAR_COLLECTOR_BIN"
else
	begin "building the Collector granularcol (go, log: $(show "$logs/build-granularcol.log"))"
	run_logged "$logs/build-granularcol.log" collector-plugin/build.sh
	if grep -q 'up to date' "$logs/build-granularcol.log"; then
		finish "done" "up to date"
	else
		finish "done"
	fi
fi

# Every binary of the workspace (the services, load-driver, granular),
# with the command of tests/run.sh's build-demo step, so each build serves
# both (that step says why `--examples`).
build_workspace() {
	RUSTFLAGS="$rustflags" CARGO_TARGET_DIR="$target" cargo build --workspace --bins --examples
}
begin "building the workspace (cargo, $(show "$bin"), log: $(show "$logs/build-cargo.log"))"
run_logged "$logs/build-cargo.log" build_workspace
finish "done"

# ---- the pipeline: Jaeger, granularcol, two services, all on free loopback ports
begin "starting Jaeger (log: $(show "$logs/jaeger.log"))"
start_server Jaeger "$logs/jaeger.log" JAEGER_QUERY= deploy/jaeger/run.sh
read -r jaeger_query otlp_grpc _ <<<"JAEGER_QUERY=$server_line"
jaeger_query=${jaeger_query#JAEGER_QUERY=}
otlp_grpc=${otlp_grpc#OTLP_GRPC=}
finish ready

begin "starting the Collector granularcol, deploy/collector/single.yaml (log: $(show "$logs/granularcol.log"))"
start_server granularcol "$logs/granularcol.log" GRANULAR_OTLP_GRPC= \
	env JAEGER_OTLP_GRPC="$otlp_grpc" GRANULAR_SLO="$slo" GRANULAR_DECISION_WAIT=$decision_wait \
	GRANULAR_ARTIFACT_DIR="$artifacts" deploy/collector/run.sh
read -r collector_grpc _ artifact_store collector_metrics <<<"GRANULAR_OTLP_GRPC=$server_line"
collector_grpc=${collector_grpc#GRANULAR_OTLP_GRPC=}
artifact_store=${artifact_store#GRANULAR_ARTIFACTS=}
artifacts_base=${artifact_store%/artifacts/}
collector_metrics=${collector_metrics#GRANULAR_METRICS=}
finish ready

begin "starting demo-service twice: inventory and messages (logs: $(show "$logs")/{inventory,messages}.log)"
# Starts demo-service as service $1 with extra VAR=value settings; sets demo_url.
start_demo() {
	local name=$1 log="$logs/$1.log"
	shift
	env "$@" DEMO_LISTEN=127.0.0.1:0 OTEL_SERVICE_NAME="$name" \
		OTEL_EXPORTER_OTLP_ENDPOINT="$collector_grpc" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
		OTEL_BSP_SCHEDULE_DELAY=500 NO_COLOR=1 GRANULAR_SLO="$slo" GRANULAR_DETAIL=events \
		GRANULAR_ARTIFACTS=otlp GRANULAR_ARTIFACT_BASE_URL="$artifacts_base" \
		"$bin/demo-service" >"$log" 2>&1 &
	pids+=("$!")
	demo_url=$(wait_line "$log" "listening on " "${pids[-1]}") || fail_start "demo-service $name" "$log"
}
start_demo inventory
inventory=$demo_url
start_demo messages DEMO_DOWNSTREAM_URL="$inventory"
messages=$demo_url
finish ready

echo "Where each piece listens (all on loopback):"
echo "  messages     $messages   GET /messages; the downstream pathology calls inventory"
echo "  inventory    $inventory"
echo "  granularcol  OTLP gRPC $collector_grpc (both services export spans and artifacts here)"
echo "               artifact store $artifact_store, metrics $collector_metrics"
echo "  Jaeger       query API $jaeger_query, OTLP gRPC $otlp_grpc (from granularcol)"
echo "  SLO (services and granularcol): $slo; granularcol decides $decision_wait after a trace's first span"
grep -h 'granular: sources:' "$logs/messages.log" | head -n1 | sed 's/^.*granular: /  messages: granular: /' || true

# ---- load
begin "sending load: ${duration} s at ${rate} req/s to messages, 2% of each pathology (log: $(show "$logs/load.txt"))"
run_logged "$logs/load.txt" "$bin/load-driver" --url "$messages" --duration "$duration" \
	--rate "$rate" --mix "$mix"
finish "done"
grep '^summary ' "$logs/load.txt" | sed 's/^/  /'
echo "  slow requests made on purpose: $(grep -c '^slow ' "$logs/load.txt" || true) (their trace ids: $(show "$logs/load.txt"))"
# Other processes' CPU use shows in the answers (os_wait), so say how busy the machine was.
if [[ -r /proc/loadavg ]]; then
	echo "  this machine: $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) over the last minute"
fi
# A kind the random mix left out gets a few requests of its own.
for kind in "${kinds[@]}"; do
	grep -q "^slow $kind " "$logs/load.txt" && continue
	echo "  no '$kind' request in the random mix; sending two"
	run_logged "$logs/load-$kind.txt" "$bin/load-driver" --url "$messages" --duration 0.5 \
		--rate 4 --mix "$kind=100%"
	grep "^slow $kind " "$logs/load-$kind.txt" >>"$logs/load.txt" || true
done

# ---- Granular's answers, read back from Jaeger
step_no=$((step_no + 1))
step_start=$SECONDS
echo "[$step_no/$steps] Granular's answers as Jaeger returns them (granular explain), one slow request per pathology"
# What each pathology is, in words, for the headings.
describe() {
	case $1 in
	report) echo "CPU hogs: a normal request, with GET /report hogs (100 ms of CPU each, one per worker) sent 3 ms behind it" ;;
	block) echo "a blocked worker: std::thread::sleep (50 ms) inside the async handler" ;;
	blockfile) echo "blocking I/O in async code: write, fsync and read back a 4 MiB file, then a DNS lookup, with std calls inside the handler" ;;
	downstream) echo "a slow downstream: an HTTP call to inventory, which answers after 80 ms" ;;
	spawn_blocking) echo "a saturated blocking pool: 16 spawn_blocking jobs of 30 ms queued on a small pool" ;;
	child) echo "unspanned work: the db step's 20 ms of CPU moved to a spawned child task that has no span" ;;
	alloc) echo "an allocation storm: 64 MiB in 4-64 KiB pieces inside the handler (granular::Alloc counts it)" ;;
	esac
}
# What Granular's answer to the pathology is, in words.
look_for() {
	case $1 in
	report) echo "scheduler_wait, and the hog that held the worker in granular.culprit" ;;
	block) echo "blocked_in_poll: the worker thread off-CPU inside the request's poll" ;;
	blockfile) echo "blocked_in_poll (fsync, DNS) and running (copying the file)" ;;
	downstream) echo "idle: no runtime trouble; the inventory span holds the time" ;;
	spawn_blocking) echo "blocking_pool: its jobs queued for and ran on the blocking pool" ;;
	child) if ((stable)); then
		echo "idle: the stable build does not see the child task's CPU (the default build reads it as running)"
	else
		echo "running: the child task's CPU counted to the request that spawned it"
	fi ;;
	alloc) echo "running, and the storm in granular.alloc.bytes and .count" ;;
	esac
}
# The dominant causes (granular.cause) that answer the pathology when it is
# what made the request slow: look_for's, plus os_wait for CPU work (the part
# of it the OS gave to other processes).
expected() {
	case $1 in
	report) echo "scheduler_wait" ;;
	block) echo "blocked_in_poll" ;;
	blockfile) echo "blocked_in_poll running os_wait" ;;
	downstream) echo "idle" ;;
	spawn_blocking) echo "blocking_pool" ;;
	child) if ((stable)); then echo "idle"; else echo "running os_wait"; fi ;;
	alloc) echo "running os_wait" ;;
	esac
}
# A heavier request of the kind, for when the load's requests of it stay
# under the SLO or the pathology is the smaller part of them.
heavier() {
	case $1 in
	block) echo "/messages?pathology=block&ms=150" ;;
	blockfile) echo "/messages?pathology=blockfile&mib=64" ;;
	downstream) echo "/messages?pathology=downstream&ms=200" ;;
	spawn_blocking) echo "/messages?pathology=spawn_blocking&jobs=64" ;;
	child) echo "/messages?pathology=child&ms=80" ;;
	alloc) echo "/messages?pathology=alloc&mib=1024" ;;
	*) return 1 ;;
	esac
}
# The median request of kind $1 in the load, "trace_id latency_ms": a typical
# one (the slowest of a kind is often one that a CPU hog also hit).
pick() {
	grep "^slow $1 " "$logs/load.txt" |
		sed 's/.*trace_id=\([0-9a-f]*\) latency_ms=\([0-9]*\).*/\2 \1/' |
		sort -n | awk '{line[NR] = $2 " " $1} END {if (NR) print line[int((NR + 1) / 2)]}'
}
# root_field NAME: attribute NAME of the GET /messages span (the root of a
# demo trace) in the `granular explain` output in $out.
root_field() {
	sed -n '/^\[messages\] GET \/messages /,/^  \[/p' <<<"$out" |
		grep -m1 "^    $1 = " | sed "s/^    $1 = //" || true
}
# report TRACE_ID: prints the trace as Jaeger returns it; sets out, cause
# (the root span's granular.cause) and line (its first line).
report() {
	out=$("$bin/granular" explain --jaeger "$jaeger_query" "$1" 2>&1) || {
		echo "$out"
		die "granular explain $1 failed"
	}
	echo "\$ granular explain $1"
	echo "$out"
	cause=$(root_field granular.cause)
	line=$(grep -m1 '^\[messages\] GET /messages ' <<<"$out" || true)
}
# check_artifact KIND: fetches the root span's granular.artifact link from
# granularcol's store and says what it served; sets artifact_link when served
# and adds the viewer page of it to viewers.
check_artifact() {
	local link status length skipped
	link=$(root_field granular.artifact)
	if [[ -z "$link" ]]; then
		skipped=$(root_field granular.artifact.skipped)
		echo "  (no Perfetto artifact for this span${skipped:+: granular.artifact.skipped = $skipped})"
		return
	fi
	status=$(http_get "$link" 1 | head -n1 | cut -d' ' -f2 || true)
	length=$(http_get "$link" 1 | header content-length)
	if [[ "$status" == 200 ]]; then
		echo "  artifact: granularcol's store serves the granular.artifact link ($length bytes)"
		artifact_link=$link
		viewers+=("$1: ${link%/artifacts/*}/view/${link##*/}")
	else
		echo "  artifact: the granular.artifact link answered ${status:-nothing}, not 200"
	fi
}
# judge KIND: after report, says whether the answer is the pathology's;
# succeeds if it is.
judge() {
	if [[ -z "$cause" ]]; then
		if [[ "$line" == *" ok]"* ]]; then
			echo "  (not analyzed: its GET /messages span met the SLO, so granularcol forwarded the trace"
			echo "   stripped of Granular detail; the client's latency includes waiting to be accepted)"
		else
			local skipped
			skipped=$(root_field granular.skipped)
			echo "  (not analyzed${skipped:+: granular.skipped = $skipped})"
		fi
		return 1
	fi
	check_artifact "$1"
	[[ " $(expected "$1") " == *" $cause "* ]] && return
	echo "  note: the dominant cause here is $cause, not $(either "$(expected "$1")");"
	echo "  the granular.time.* line above shows how the request's time divides."
	local culprit
	culprit=$(root_field granular.culprit.span)
	[[ -z "$culprit" ]] || echo "  What held the worker, per granular.culprit.span: $culprit."
	return 1
}
# "a or b or c" from the words of $1.
either() {
	sed 's/ /, /g; s/\(.*\), /\1 or /' <<<"$1"
}

answered=() unanswered=() viewers=()
artifact_link='' shown_id=''
for kind in "${kinds[@]}"; do
	id='' latency=''
	read -r id latency <<<"$(pick "$kind")" || true
	echo
	echo "==== $kind: $(describe "$kind")"
	echo "     look for: $(look_for "$kind")"
	if [[ -z "$id" ]]; then
		echo "(cannot show '$kind': the load driver made no '$kind' request, even when asked for two; see $(show "$logs/load.txt"))"
		unanswered+=("$kind")
		continue
	fi
	echo "The median '$kind' request of the load ($latency ms at the client):"
	report "$id"
	if judge "$kind"; then
		answered+=("$kind")
		shown_id=$id
		continue
	fi
	[[ -z "$cause" ]] || shown_id=$id
	if ! path=$(heavier "$kind"); then
		unanswered+=("$kind")
		continue
	fi
	echo
	echo "A heavier '$kind' request, GET $path:"
	id=$(http_get "$messages$path" 1 | header x-trace-id)
	[[ -n "$id" ]] || die "GET $path returned no x-trace-id"
	report "$id"
	if judge "$kind"; then
		answered+=("$kind (heavier)")
		shown_id=$id
	else
		unanswered+=("$kind")
	fi
done
[[ -n "$shown_id" ]] || die "no slow request was analyzed"

echo
echo "==== summary (step $step_no took $((SECONDS - step_start)) s)"
echo "Granular's dominant cause was the pathology's for ${#answered[@]} of ${#kinds[@]}: ${answered[*]:-none}."
((${#unanswered[@]} == 0)) || echo "Not for: ${unanswered[*]} (see the notes above)."
metrics=$(http_get "$collector_metrics" || true)
decisions=$(grep '^otelcol_processor_granular_decisions' <<<"$metrics" |
	sed -n 's/.*outcome="\([a-z_]*\)".* \([0-9.e+]*\)$/\1=\2/p' | sort | paste -sd' ' || true)
echo "granularcol's decisions, per trace: ${decisions:-(none reported)}."
stored=$(http_get "$artifact_store" | grep -o '"id":' | wc -l || true)
echo "Its artifact store holds $stored Perfetto artifacts (of violating traces), in $(show "$artifacts")."
if ((${#viewers[@]})); then
	echo "Each pathology's slow request in the viewer (granularcol serves the page beside its artifact):"
	printf '  %s\n' "${viewers[@]}"
fi
echo "Done in $((SECONDS - started)) s; logs in $(show "$logs")."

echo
if ((keep)); then
	for pid in "${pids[@]}"; do
		! kill -0 "$pid" 2>/dev/null || echo "$pid"
	done >"$pid_file"
	echo "Jaeger, granularcol and both services keep running (DEMO_KEEP=1). For example:"
	echo "  $bin/granular explain --jaeger $jaeger_query $shown_id"
	echo "  curl -s $jaeger_query/api/traces/$shown_id | head -c 600"
	echo "  curl -sG $jaeger_query/api/traces --data-urlencode service=messages \\"
	echo "    --data-urlencode 'tags={\"granular.trace.cause\":\"scheduler_wait\"}' --data-urlencode limit=5"
	[[ -z "$artifact_link" ]] ||
		echo "  curl -so timeline.perfetto-trace $artifact_link   # open in https://ui.perfetto.dev"
	echo "  curl -s $artifact_store   # every stored artifact"
	echo "  curl -s $collector_metrics | grep granular_decisions"
	echo "  curl -s '$messages/messages?pathology=block&ms=80'   # one more slow request"
	echo "and the viewer links above. Ctrl-C here (or SIGTERM) stops them all (their pids: $(show "$pid_file"))."
	# Until interrupted: the INT or TERM trap exits, and the EXIT trap stops everything. The
	# sleep runs in the background so that `wait` returns to the traps at once.
	while :; do
		sleep 3600 &
		pids+=("$!")
		wait "$!" || true
	done
else
	echo "Everything the demo started stops now, and the viewer links with it. DEMO_KEEP=1 keeps"
	echo "Jaeger, granularcol and the services running, and prints how to query them."
fi
