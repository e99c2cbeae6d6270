#!/usr/bin/env bash
# three.sh start|status|stop|kill NAME|restart NAME: a three-member coordkit
# cluster (m1, m2, m3) on this machine, deployed the way etcd's
# --initial-cluster static bootstrap is. Work directory:
# ${COORDKIT_CLUSTER_DIR:-/tmp/coordkit-cluster}.
#
#   member  peer (Raft)        client (HTTP API)
#   m1      127.0.0.1:12380    127.0.0.1:12379
#   m2      127.0.0.1:22380    127.0.0.1:22379
#   m3      127.0.0.1:32380    127.0.0.1:32379
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NAMES=(m1 m2 m3)
declare -A PEER=([m1]=127.0.0.1:12380 [m2]=127.0.0.1:22380 [m3]=127.0.0.1:32380)
declare -A CLIENT=([m1]=http://127.0.0.1:12379 [m2]=http://127.0.0.1:22379 [m3]=http://127.0.0.1:32379)
TOKEN=coordkit-three
ENDPOINTS=("${CLIENT[m1]}" "${CLIENT[m2]}" "${CLIENT[m3]}")
INITIAL_CLUSTER=m1=http://${PEER[m1]},m2=http://${PEER[m2]},m3=http://${PEER[m3]}

usage() {
	echo "usage: $0 start|status|stop|kill NAME|restart NAME   (NAME: ${NAMES[*]})" >&2
	exit 2
}

check_name() {
	[[ -n ${PEER[$1]:-} ]] || {
		echo "unknown member '$1'" >&2
		usage
	}
}

# secret_file: the cluster secret every member proves it holds, made once
# (32 random bytes, hex) and kept beside the data directories.
secret_file() {
	local f=$DIR/cluster-secret
	if [[ ! -s $f ]]; then
		(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$f")
	fi
	echo "$f"
}

# start_one NAME: the founding flags; on a restart the data directory
# already holds the member and the --initial-cluster flags are ignored.
start_one() {
	local name=$1
	start_member "$name" --name "$name" --data-dir "$DIR/data/$name" \
		--listen-peer-urls "http://${PEER[$name]}" --listen-client-urls "${CLIENT[$name]}" \
		--initial-cluster "$INITIAL_CLUSTER" --initial-cluster-token "$TOKEN" \
		--initial-cluster-state new --cluster-secret-file "$(secret_file)"
}


[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
start)
	[[ $# -eq 0 ]] || usage
	build
	# The members of a new cluster must run together before any has a leader.
	for n in "${NAMES[@]}"; do start_one "$n"; done
	for n in "${NAMES[@]}"; do wait_healthy "$n" "${CLIENT[$n]}"; done
	member_table "${ENDPOINTS[@]}"
	;;
status)
	[[ $# -eq 0 ]] || usage
	status_report m1 "${CLIENT[m1]}" m2 "${CLIENT[m2]}" m3 "${CLIENT[m3]}"
	;;
stop)
	[[ $# -eq 0 ]] || usage
	for n in "${NAMES[@]}"; do stop_member "$n"; done
	;;
kill)
	[[ $# -eq 1 ]] || usage
	check_name "$1"
	kill_member "$1"
	;;
restart)
	[[ $# -eq 1 ]] || usage
	check_name "$1"
	[[ -x $MEMBER ]] || build
	stop_member "$1"
	start_one "$1"
	wait_healthy "$1" "${CLIENT[$1]}"
	member_table "${ENDPOINTS[@]}"
	;;
*)
	usage
	;;
esac
