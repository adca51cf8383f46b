#!/usr/bin/env bash
# Granular's full test suite, as CI runs it (`bash .ci/run`): Jaeger and
# granularcol builds (in the background while the first Rust steps run),
# Python test dependencies (.cache/venv), Chromium for the browser tests
# (apt-get, when missing), rustfmt, clippy, then the
# workspace tests (end-to-end tests included) once in stable mode and once
# with --cfg tokio_unstable (in its own target dir, target/unstable), a short
# run of the demo (examples/demo.sh) and of the overhead benchmark, the
# completeness test of both builds side by side, then, side by side, loom, the
# benchmarks in test mode, and go vet + go test of collector-plugin/. Each step prints its time; the last line is a summary.
# Builds and installs whatever it needs; Go and cargo caches are the tools'
# defaults.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

stable_target=${CARGO_TARGET_DIR:-target}
unstable_target="$stable_target/unstable"
unstable_rustflags="${RUSTFLAGS:+$RUSTFLAGS }--cfg tokio_unstable"

suite_start=$SECONDS
timings=()
# pid, name, log of each background job (see background()).
background_jobs=()
current=
on_exit() {
	local status=$? i
	# A failed step leaves no background build behind.
	for ((i = 0; i < ${#background_jobs[@]}; i += 3)); do
		kill "${background_jobs[i]}" 2>/dev/null || true
	done
	if ((status != 0)) && [[ -n "$current" ]]; then
		echo
		echo "tests/run.sh: FAILED at step '$current' (exit $status) after $((SECONDS - suite_start))s; passed: ${timings[*]:-none}" >&2
	fi
}
trap on_exit EXIT

# step NAME COMMAND...: runs COMMAND with a header and its timing.
step() {
	local name=$1 start=$SECONDS
	shift
	current=$name
	printf '\n==> %s: %s\n' "$name" "$*"
	"$@"
	timings+=("$name=$((SECONDS - start))s")
	printf '<== %s ok (%ds)\n' "$name" "$((SECONDS - start))"
	current=
}

# CI runs on fresh machines: get the rustup components the checks use.
ensure_components() {
	local missing=()
	cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
	cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
	if ((${#missing[@]} > 0)); then
		command -v rustup >/dev/null 2>&1 ||
			{ echo "error: cargo ${missing[*]} missing and rustup not available to install them" >&2; return 1; }
		rustup component add "${missing[@]}"
	fi
}

# The e2e tests start the demo binaries from the same target dir and
# profile as the test executables, so build them with the same settings; and
# with the features `cargo test --workspace` gives every dependency: cargo
# resolves features per command, and a build that selected fewer packages,
# or left out the dev-dependencies, would compile most dependencies a second
# time, with other features. `--examples` (the workspace has no example
# targets) is what makes cargo count the dev-dependencies in. Builds every
# binary of the workspace (granular and overhead too), with the command
# examples/demo.sh uses, so the demo-smoke and overhead-smoke steps build
# nothing.
build_demo() {
	cargo build --workspace --bins --examples
}

# Python packages for tests that check artifacts with official tooling
# (tests/requirements.txt: perfetto's schema for bridge/tests/perfetto_schema.rs),
# in .cache/venv; GRANULAR_PYTHON points there.
# A GRANULAR_PYTHON set by the caller is used as is.
python_deps() {
	if [[ -n "${GRANULAR_PYTHON:-}" ]]; then
		echo "using GRANULAR_PYTHON=$GRANULAR_PYTHON"
		return
	fi
	local venv="$repo/.cache/venv" stamp="$repo/.cache/venv/.requirements"
	if [[ ! -x "$venv/bin/python" ]] || ! cmp -s tests/requirements.txt "$stamp"; then
		command -v python3 >/dev/null 2>&1 ||
			{ echo "error: python3 is not on PATH (needed for tests/requirements.txt)" >&2; return 1; }
		python3 -m venv "$venv"
		"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
		cp tests/requirements.txt "$stamp"
	fi
	export GRANULAR_PYTHON="$venv/bin/python"
	echo "GRANULAR_PYTHON=$GRANULAR_PYTHON ($("$GRANULAR_PYTHON" --version))"
}

# The browser tests (tests/tests/viewer.rs, through tests/src/browser.rs) drive the system
# Chromium with Playwright (tests/requirements.txt); Playwright's own browser download is never
# used. Installed from Debian's packages when missing (CI runs as root).
chromium=/usr/bin/chromium
browser_deps() {
	if [[ -x "$chromium" ]]; then
		echo "using $chromium ($("$chromium" --version 2>/dev/null || echo "version unknown"))"
		return
	fi
	echo "$chromium is missing: installing Debian's chromium package (apt-get update, then apt-get install -y chromium)"
	if ((EUID != 0)); then
		echo "error: installing chromium needs root; run \`apt-get install -y chromium\` as root" >&2
		return 1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
	[[ -x "$chromium" ]] ||
		{ echo "error: apt-get install chromium did not provide $chromium" >&2; return 1; }
	echo "installed $("$chromium" --version 2>/dev/null || echo "$chromium")"
}

unstable() {
	RUSTFLAGS="$unstable_rustflags" CARGO_TARGET_DIR="$unstable_target" "$@"
}

# Model-checks the recorder ring's publication protocol and the span slab (bridge/loom) under --cfg loom.
loom_check() {
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p granular-loom --release
}

# Every benchmark run once, in criterion's test mode, from the debug build the steps above made
# (a bench-profile build would compile every dependency again): `--workspace` keeps the test
# step's features (`-p granular` would build the dependencies again with fewer), `--bench '*'`
# leaves out the unit tests the test step ran.
bench_smoke() {
	cargo test --workspace --bench '*'
}

# The completeness test (tests/tests/completeness.rs) sends 10,000 violating requests at a
# moderate 125 a second: 90 s of waiting for a third of one core. The test steps leave it out
# (`--skip`, which libtest reports as "1 filtered out") and the completeness step runs it for both
# builds side by side. `--workspace` keeps the test step's features, so nothing is built again.
completeness_test=every_violating_trace_reaches_jaeger_whole
completeness() {
	cargo test --workspace --test completeness
}

# The faults-under-load tests (backend_faults, shutdown, soak: ~3 minutes of real load) measure
# the export path and the process, which task hooks do not change: they run in the stable
# build's test step only.
unstable_skips=(--skip otlp_endpoint_down_then_up --skip stalled_backend
	--skip granularcol_killed_and_restarted --skip sigterm_under_load_flushes_and_exits_zero
	--skip saturation_plateaus_in_memory_fds_and_threads)

# The overhead benchmark's harness, once, short, on the binaries the build-demo step built
# (`cargo run -p granular-e2e` would build it again with that package's features alone).
overhead_smoke() {
	"$stable_target/debug/overhead" --smoke --no-build
}

# background NAME COMMAND...: starts COMMAND with its output in .cache/NAME.log.
background() {
	local name=$1 log="$repo/.cache/$1.log"
	shift
	mkdir -p "$repo/.cache"
	"$@" >"$log" 2>&1 &
	background_jobs+=("$!" "$name" "$log")
	printf '\n==> %s: %s (in the background, log %s)\n' "$name" "$*" "$log"
}

# Waits for every background job; shows the last line of each log, the whole tail of a
# failed one.
wait_background() {
	local i pid name log failed=0
	for ((i = 0; i < ${#background_jobs[@]}; i += 3)); do
		pid=${background_jobs[i]} name=${background_jobs[i + 1]} log=${background_jobs[i + 2]}
		if wait "$pid"; then
			echo "$name: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
		else
			echo "$name FAILED; last lines of $log:" >&2
			tail -n 40 "$log" >&2
			failed=1
		fi
	done
	background_jobs=()
	return "$failed"
}

collector_plugin() {
	(cd collector-plugin && go vet ./... && go test ./...)
}

step toolchain ensure_components
# Jaeger and granularcol are Go builds that spend much of a fresh machine's time waiting on
# module downloads and the linker: they run in the background beside the first Rust steps,
# and the go-builds step waits for them before the first step that starts them.
background jaeger deploy/jaeger/build.sh
background granularcol collector-plugin/build.sh
step python python_deps
step browser browser_deps
step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step build-demo build_demo
step go-builds wait_background
step test cargo test --workspace -- --skip "$completeness_test"
step clippy-unstable unstable cargo clippy --workspace --all-targets -- -D warnings
step build-demo-unstable unstable build_demo
step test-unstable unstable cargo test --workspace -- --skip "$completeness_test" "${unstable_skips[@]}"
# The README's first command, short: builds nothing the steps above did not, runs the demo's
# whole pipeline (services -> granularcol -> Jaeger) and fails if no slow request is explained.
step demo-smoke env DEMO_DURATION=3 examples/demo.sh
step overhead-smoke overhead_smoke
background completeness completeness
background completeness-unstable unstable completeness
step completeness wait_background
# The last checks measure no time, so they run side by side, after every step whose tests do: the
# benchmarks keep one core busy for most of a minute, loom and go test use the other.
background loom loom_check
background bench-smoke bench_smoke
if [[ -d collector-plugin ]]; then
	background collector-plugin collector_plugin
else
	echo
	echo "note: no collector-plugin/ directory yet; skipping go vet and go test"
fi
step loom+bench-smoke+collector-plugin wait_background

echo
echo "tests/run.sh: all ${#timings[@]} steps passed in $((SECONDS - suite_start))s (${timings[*]})"
