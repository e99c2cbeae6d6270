#!/usr/bin/env bash
# single.sh start|status|stop: one coordkit member with the defaults, like
# running etcd with no flags: Raft on 127.0.0.1:2380, HTTP API on
# 127.0.0.1:2379. Work directory: ${COORDKIT_CLUSTER_DIR:-/tmp/coordkit-cluster}.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAME=default
ENDPOINT=http://127.0.0.1:2379

usage() {
	echo "usage: $0 start|status|stop" >&2
	exit 2
}

[[ $# -eq 1 ]] || usage
case $1 in
start)
	build
	start_member "$NAME" --name "$NAME" --data-dir "$DIR/data/$NAME" \
		--listen-peer-urls http://127.0.0.1:2380 --listen-client-urls "$ENDPOINT"
	wait_healthy "$NAME" "$ENDPOINT"
	member_table "$ENDPOINT"
	;;
status)
	status_report "$NAME" "$ENDPOINT"
	;;
stop)
	stop_member "$NAME"
	;;
*)
	usage
	;;
esac
