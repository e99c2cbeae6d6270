# Shared by single.sh and three.sh; source it, do not run it.
#
# Layout of the work directory $DIR (default /tmp/coordkit-cluster, set with
# COORDKIT_CLUSTER_DIR; never inside the repository):
#   $DIR/bin/coordkit, $DIR/bin/coordctl   built from this repository
#   $DIR/data/NAME                       a member's --data-dir
#   $DIR/logs/NAME.log                   a member's stdout and stderr
#   $DIR/run/NAME.pid                    a running member's process ID

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${COORDKIT_CLUSTER_DIR:-/tmp/coordkit-cluster}
WAIT_SECONDS=${COORDKIT_WAIT_SECONDS:-60} # for a member to become healthy
STOP_SECONDS=${COORDKIT_STOP_SECONDS:-20} # for a member to exit after SIGTERM

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
case "$DIR/" in
"$REPO"/*)
	echo "error: the work directory $DIR is inside the repository $REPO; set COORDKIT_CLUSTER_DIR elsewhere" >&2
	exit 1
	;;
esac
MEMBER=$DIR/bin/coordkit
COORDCTL=$DIR/bin/coordctl

say() { echo "+ $*"; }

die() {
	echo "error: $*" >&2
	exit 1
}

# build compiles the coordkit (member) and coordctl binaries into $DIR/bin.
build() {
	say "building coordkit and coordctl into $DIR/bin"
	mkdir -p "$DIR/bin" "$DIR/data" "$DIR/logs" "$DIR/run"
	# cmd/coordkit is a module of its own (it serves etcd's API): build it there.
	(cd "$REPO/cmd/coordkit" && go build -o "$MEMBER" .) && (cd "$REPO" && go build -o "$COORDCTL" ./cmd/coordctl)
}

# alive PID: the process exists and is not a zombie (a member started by an
# earlier run of a script is the child of init, which may reap it late).
alive() {
	local stat
	kill -0 "$1" 2>/dev/null || return 1
	if [[ -r /proc/$1/stat ]] && read -r stat </proc/"$1"/stat 2>/dev/null; then
		stat=${stat##*) } # the state follows "(command) "
		[[ ${stat:0:1} != Z ]] || return 1
	fi
	return 0
}

# pid_of NAME prints the PID of the running member NAME, or fails. A pid
# file left by a member that is gone is removed.
pid_of() {
	local f=$DIR/run/$1.pid pid
	[[ -f $f ]] || return 1
	pid=$(<"$f")
	if [[ -n $pid ]] && alive "$pid"; then
		echo "$pid"
		return 0
	fi
	rm -f "$f"
	return 1
}

# start_member NAME ARGS...: starts bin/coordkit ARGS in the background, unless
# NAME runs already.
start_member() {
	local name=$1 pid
	shift
	if pid=$(pid_of "$name"); then
		say "$name is already running (pid $pid)"
		return 0
	fi
	mkdir -p "$DIR/data" "$DIR/logs" "$DIR/run"
	say "starting $name: coordkit $*"
	echo "=== $(date '+%F %T') start: member $*" >>"$DIR/logs/$name.log"
	nohup "$MEMBER" "$@" >>"$DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$DIR/run/$name.pid"
	say "$name: pid $!, log $DIR/logs/$name.log"
}

# log_tail NAME: the last lines NAME logged since it was last started.
log_tail() {
	local f=$DIR/logs/$1.log lines i start=0
	mapfile -t lines <"$f"
	for i in "${!lines[@]}"; do
		[[ ${lines[i]} != "=== "* ]] || start=$i
	done
	((${#lines[@]} - start <= 20)) || start=$((${#lines[@]} - 20))
	echo "--- last lines of $f:"
	printf '%s\n' "${lines[@]:start}"
}

# wait_healthy NAME ENDPOINT: polls coordctl endpoint health until it
# succeeds, the member's process exits, or WAIT_SECONDS pass.
wait_healthy() {
	local name=$1 endpoint=$2 deadline=$((SECONDS + WAIT_SECONDS)) out
	say "waiting for $name to be healthy at $endpoint (up to ${WAIT_SECONDS}s)"
	while true; do
		if out=$("$COORDCTL" --endpoints "$endpoint" endpoint health 2>&1); then
			echo "$out"
			return 0
		fi
		if ! pid_of "$name" >/dev/null; then
			log_tail "$name" >&2
			die "$name exited before becoming healthy"
		fi
		if ((SECONDS >= deadline)); then
			echo "$out" >&2
			log_tail "$name" >&2
			die "$name is not healthy after ${WAIT_SECONDS}s"
		fi
		sleep 0.5
	done
}

# stop_member NAME: SIGTERM, wait STOP_SECONDS for the exit, then SIGKILL.
stop_member() {
	local name=$1 pid deadline
	if ! pid=$(pid_of "$name"); then
		say "$name is not running"
		rm -f "$DIR/run/$name.pid"
		return 0
	fi
	say "stopping $name (SIGTERM to pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + STOP_SECONDS))
	while alive "$pid"; do
		if ((SECONDS >= deadline)); then
			echo "warning: $name (pid $pid) still running ${STOP_SECONDS}s after SIGTERM; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	rm -f "$DIR/run/$name.pid"
	say "$name stopped"
}

# kill_member NAME: SIGKILL, like a crash.
kill_member() {
	local name=$1 pid
	pid=$(pid_of "$name") || die "$name is not running"
	say "killing $name (kill -9 $pid)"
	kill -KILL "$pid"
	while alive "$pid"; do sleep 0.1; done
	rm -f "$DIR/run/$name.pid"
	say "$name killed"
}

# member_table ENDPOINT...: the member list as a table, from the first
# endpoint that answers.
member_table() {
	[[ -x $COORDCTL ]] || die "$COORDCTL is missing: run start first"
	"$COORDCTL" --endpoints "$(join_commas "$@")" -w table member list
}

# status_report NAME ENDPOINT [NAME ENDPOINT]...: each member's process;
# then, if any runs, the member table, every endpoint's health and its view
# of every shard.
status_report() {
	local eps=() pid running=0
	[[ -x $COORDCTL ]] || die "$COORDCTL is missing: run start first"
	while (($# >= 2)); do
		if pid=$(pid_of "$1"); then
			echo "$1: running, pid $pid, client $2, log $DIR/logs/$1.log"
			running=$((running + 1))
		else
			echo "$1: not running (client $2, log $DIR/logs/$1.log)"
		fi
		eps+=("$2")
		shift 2
	done
	((running > 0)) || return 0
	member_table "${eps[@]}" || true
	"$COORDCTL" --endpoints "$(join_commas "${eps[@]}")" -w table endpoint health || true
	"$COORDCTL" --endpoints "$(join_commas "${eps[@]}")" -w table endpoint status || true
}

join_commas() {
	local IFS=,
	echo "$*"
}
