package main

import (
	"fmt"
	"net"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/coordkit/coordkit/etcdv3"
)

// sysV3 is coordkit driven as etcd is: etcd's v3 API served on each member
// (etcdv3, one gRPC server per member on loopback) and one clientv3 client
// per member. The protocol and the client are etcd's on both sides, so
// beside sysEtcd it compares the servers alone. Not in allSystems: only the
// workloads in v3Workloads run it, and only when -systems names it.
const sysV3 = "coordkit-v3"

// v3Workloads are the workloads sysV3 runs (and their 1-member forms).
var v3Workloads = map[string]bool{"put-256": true, "get-lin": true, "watch-1": true}

// knownSystems are the systems -systems accepts, in table order.
var knownSystems = append(append([]string(nil), allSystems...), sysV3)

// v3System is a coordkit cluster behind etcd's API, driven through the
// etcd system's clientv3 code.
type v3System struct {
	*etcdSystem // clients only
	ck          *coordkitSystem
	grpcs       []*grpc.Server
}

func startV3(voters int) (*v3System, error) {
	ck, err := startCoordkit(voters)
	if err != nil {
		return nil, err
	}
	s := &v3System{etcdSystem: &etcdSystem{}, ck: ck}
	for _, n := range ck.nodes {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.close()
			return nil, err
		}
		srv := grpc.NewServer()
		etcdv3.Register(srv, n)
		go srv.Serve(lis)
		s.grpcs = append(s.grpcs, srv)
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + lis.Addr().String()},
			DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("clientv3 to coordkit: %w", err)
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

func (s *v3System) members() int { return len(s.ck.nodes) }

func (s *v3System) close() {
	for _, c := range s.clients {
		c.Close()
	}
	for _, g := range s.grpcs {
		g.Stop()
	}
	s.ck.close()
}
