#!/usr/bin/env bash
# Fuzzes Granular's input parsers for a given time each and records what ran in
# docs/reliability.md (the fuzzing block under "Last long runs"): executions, findings, machine, command.
#
#   tests/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#
# Targets, on stable Rust (property tests, re-run with fresh random seeds until the
# time is up; a failure is shrunk by proptest and printed) and Go's native fuzzer:
#   config        the GRANULAR_* parser (bridge/tests/config_properties.rs)
#   traceparent   W3C traceparent parsing (bridge/src/propagation.rs)
#   perfetto      the Perfetto encoder fed arbitrary timelines (bridge/src/timeline/perfetto.rs)
#   ring-read     the record decoder fed rings read while lapped and cut mid-event
#                 (bridge/src/recorder/codec/tests.rs)
#   processor     the Collector processor's OTLP input (collector-plugin/granularprocessor,
#                 FuzzConsumeTraces, seeded from testdata/fuzz)
#   extension     the artifact store's HTTP routes: methods, ids, traversal, queries
#                 (collector-plugin/granularartifactsextension, FuzzHandler)
# Exit status: 0 when no target found anything, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || {
	echo "tests/fuzz.sh: SECONDS_PER_TARGET must be a whole number above 0, got '$secs'" >&2
	exit 2
}
# How many cases one run of a property test tries; runs repeat until the time is up.
chunk=250
logs=target/fuzz
mkdir -p "$logs"
rows=()
found=0

# The test executable of `cargo test $*` (built if needed).
test_binary() {
	cargo test --no-run --message-format=json "$@" 2>/dev/null |
		python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"].get("test"):
        print(m["executable"])' | tail -n1
}

# rust_target NAME TEST_NAME CARGO_ARGS...: runs the property test until $secs elapse.
rust_target() {
	local name=$1 test=$2 bin
	shift 2
	echo "[$name] building"
	bin=$(test_binary "$@")
	[[ -x "$bin" ]] || {
		echo "tests/fuzz.sh: no test executable for '$*'" >&2
		exit 1
	}
	local start=$SECONDS runs=0 failed=0 log="$logs/$name.log"
	: >"$log"
	echo "[$name] fuzzing for $secs s ($chunk cases a run, fresh seeds)"
	while ((SECONDS - start < secs)); do
		if ! PROPTEST_CASES=$chunk "$bin" --exact "$test" --quiet >>"$log" 2>&1; then
			failed=1
			break
		fi
		runs=$((runs + 1))
	done
	local execs=$((runs * chunk)) took=$((SECONDS - start))
	if ((failed)); then
		found=1
		echo "[$name] FOUND a failing input after $execs executions; see $log"
		rows+=("| $name | $execs | $took | 1 (see $log) |")
	else
		echo "[$name] $execs executions in $took s, nothing found"
		rows+=("| $name | $execs | $took | 0 |")
	fi
}

go_target() {
	local name=$1 fuzz=$2 pkg=$3 log="$logs/$1.log" start=$SECONDS
	echo "[$name] fuzzing for $secs s (go test -fuzz)"
	if (cd collector-plugin && go test -run '^$' -fuzz "^$fuzz\$" -fuzztime "${secs}s" "$pkg") >"$log" 2>&1; then
		local execs
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
		echo "[$name] ${execs:-?} executions in $((SECONDS - start)) s, nothing found"
		rows+=("| $name | ${execs:-?} | $((SECONDS - start)) | 0 |")
	else
		found=1
		echo "[$name] FOUND a failing input (saved under collector-plugin/$pkg/testdata/fuzz); see $log"
		rows+=("| $name | ? | $((SECONDS - start)) | 1 (see $log) |")
	fi
}

rust_target config any_environment_is_read_without_panic_and_every_error_names_its_variable \
	-p granular --test config_properties
rust_target traceparent propagation::tests::traceparent_parsing_agrees_with_the_spec_on_any_input \
	-p granular --lib
rust_target perfetto timeline::perfetto::tests::any_timeline_encodes_to_a_trace_perfetto_accepts \
	-p granular --lib
rust_target ring-read recorder::codec::tests::a_lapped_and_cut_ring_reads_back_exactly_its_whole_events \
	-p granular --lib
go_target processor FuzzConsumeTraces ./granularprocessor
go_target extension FuzzHandler ./granularartifactsextension

machine="$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //; s/ [0-9]*-Core.*//'))"
mem_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
machine+=", Linux $(uname -r), $(((mem_kib + 524288) / 1048576)) GiB"
table=$(
	echo "Machine: $machine; $(date -u +%Y-%m-%d); command: \`tests/fuzz.sh $secs\`."
	echo
	echo "| target | executions | seconds | findings |"
	echo "|---|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
)
python3 - "$table" <<'PY'
import pathlib, re, sys
path = pathlib.Path("docs/reliability.md")
text = path.read_text()
begin, end = "<!-- fuzz:begin -->", "<!-- fuzz:end -->"
new = f"{begin}\n{sys.argv[1]}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: new, text, flags=re.S)
else:
    sys.exit("docs/reliability.md has no fuzz:begin/fuzz:end markers")
path.write_text(text)
PY
echo "wrote the fuzzing table of docs/reliability.md"
exit "$found"
