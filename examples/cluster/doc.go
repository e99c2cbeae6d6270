// Package cluster holds the scripts that deploy cmd/coordkit the way an
// etcd cluster is deployed (single.sh, three.sh; see README.md), and a
// multi-process test of such a cluster: members killed, restarted, an
// observer added and removed, and the whole cluster stopped and started
// again with its data. It has no Go API.
package cluster
