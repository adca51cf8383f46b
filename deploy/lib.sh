# Shared by deploy/*/run.sh, which source it after setting
#   repo           the repository root (logs go to $repo/target/e2e-logs)
#   run_script     the script's name in error messages (deploy/X/run.sh)
#   ready_timeout  seconds a service gets to become ready
# and then call, in order: export_free_ports, start_logged, wait_until_ready,
# wait_for_exit. Bash only (uses /dev/tcp).

taken=" "

# Succeeds when something accepts TCP connections on loopback port $1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A loopback port nobody listens on (and not handed out already).
free_port() {
	local port
	while :; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		[[ "$taken" == *" $port "* ]] && continue
		if ! port_open "$port"; then
			echo "$port"
			return
		fi
	done
}

# export_free_ports VAR...: exports a free loopback port in each VAR that is unset or empty.
export_free_ports() {
	local var port
	for var in "$@"; do
		if [[ -z "${!var:-}" ]]; then
			port=$(free_port)
			taken+="$port "
			export "$var=$port"
		fi
	done
}

# start_logged NAME COMMAND...: starts COMMAND in the background with its
# output in $repo/target/e2e-logs/NAME-run-$$.log; sets pid and log. The
# process is stopped when the script exits or is signalled.
start_logged() {
	local name=$1
	shift
	local log_dir="$repo/target/e2e-logs"
	mkdir -p "$log_dir"
	log="$log_dir/$name-run-$$.log"
	"$@" >"$log" 2>&1 &
	pid=$!
	trap stop EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# shellcheck disable=SC2329 # invoked by the EXIT trap
stop() {
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
}

# fail MESSAGE...: reports the error with the log's tail and exits 1.
fail() {
	echo "$run_script: error: $*" >&2
	echo "---- last lines of $log ----" >&2
	tail -n 40 "$log" >&2
	exit 1
}

# wait_until_ready NAME CHECK...: polls CHECK until it succeeds; fails if
# the process exits first or after $ready_timeout seconds.
wait_until_ready() {
	local name=$1 deadline=$((SECONDS + ready_timeout))
	shift
	until "$@"; do
		kill -0 "$pid" 2>/dev/null || fail "$name exited during startup"
		((SECONDS < deadline)) || fail "$name not ready after ${ready_timeout}s"
		sleep 0.2
	done
}

# wait_for_exit NAME: waits for the process, then fails: it should run until interrupted.
wait_for_exit() {
	local status=0
	wait "$pid" || status=$?
	fail "$1 exited unexpectedly (status $status)"
}
