// Package etcdv3 serves etcd's v3 gRPC API on a coordkit Node, so that
// etcdctl, Go's clientv3 (with its concurrency package) and the etcd client
// libraries of other languages work against coordkit members.
//
// It is a module of its own (github.com/coordkit/coordkit/etcdv3), so that
// coordkit's core module does not depend on gRPC or etcd's API module.
//
//	srv := grpc.NewServer()
//	etcdv3.Register(srv, node, etcdv3.WithClientURLs("http://10.0.0.1:2379"))
//	srv.Serve(lis)
//
// Every response carries a header with the cluster ID (Node.ClusterID),
// this member's ID (its Raft replica ID), and the revision and Raft term of
// the shard that served it. Errors are etcd's (go.etcd.io/etcd/api/v3's
// rpctypes): compacted, future revision, lease not found, no leader,
// request too large and the others map to the codes and messages clientv3
// expects.
//
// # Shards
//
// With one shard (coordkit's default) the semantics are etcd's: one
// revision counter for the whole key space. With more, each shard keeps
// its own revisions; a request confined to one shard (keys under one
// top-level directory) carries that shard's revision, and a request whose
// keys span shards fails with InvalidArgument saying so, with nothing
// changed. Watches, transactions and revision reads across shards are
// therefore not available to etcd clients of a multi-shard cluster.
//
// What is not supported (each answers with an error, never a hang): Auth
// (every call but AuthStatus says authentication is not enabled), Put's
// ignore_value and ignore_lease, nested Txns, compares over a range,
// Range's min/max mod revision filters, MemberUpdate, Hash, HashKV,
// Downgrade, and activating an alarm (Alarm lists and disarms NOSPACE,
// which coordkit raises itself). Snapshot streams coordkit's
// backup format (Node.Snapshot), which coordctl and Node.Restore read,
// not a bbolt file etcdutl could restore. MemberAdd names the new member
// after its peer address (see Cluster).
package etcdv3

import (
	"context"
	"errors"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coordkit/coordkit/coord"
)

// Option configures Register.
type Option func(*Server)

// WithClientURLs sets the URLs where this member serves the v3 API, which
// MemberList and the member's own entry report (etcd's
// --advertise-client-urls).
func WithClientURLs(urls ...string) Option {
	return func(s *Server) { s.clientURLs = append([]string(nil), urls...) }
}

// WithPeerScheme sets the scheme of the peer URLs MemberList reports for
// members' RaftAddress: "http" (the default) or, for a cluster with TLS
// between members, "https".
func WithPeerScheme(scheme string) Option { return func(s *Server) { s.peerScheme = scheme } }

// Server is etcd's v3 API on one Node. Register creates it. Safe for
// concurrent use.
type Server struct {
	n          *coord.Node
	clientURLs []string
	peerScheme string
}

// Register serves etcd's KV, Watch, Lease, Cluster, Maintenance and Auth
// services for n on s (a *grpc.Server of the caller's: its listener, TLS
// and interceptors are the caller's choice). It does no I/O. The services
// stop answering (Unavailable, "server stopped") once n is closed.
func Register(s grpc.ServiceRegistrar, n *coord.Node, opts ...Option) *Server {
	srv := &Server{n: n, peerScheme: "http"}
	for _, o := range opts {
		o(srv)
	}
	pb.RegisterKVServer(s, kvServer{Server: srv})
	pb.RegisterWatchServer(s, watchServer{Server: srv})
	pb.RegisterLeaseServer(s, leaseServer{Server: srv})
	pb.RegisterClusterServer(s, clusterServer{Server: srv})
	pb.RegisterMaintenanceServer(s, maintenanceServer{Server: srv})
	pb.RegisterAuthServer(s, authServer{Server: srv})
	return srv
}

// header is the v3 header of a response coordkit described with h.
func (s *Server) header(h coord.Header) *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.n.ClusterID(), MemberId: s.n.ID(), Revision: int64(h.Revision), RaftTerm: h.RaftTerm}
}

// emptyHeader is the header of a response that reflects no one shard's
// state: shard 0's revision and term as this member knows them (on a
// one-shard cluster, the store's), read locally.
func (s *Server) emptyHeader() *pb.ResponseHeader {
	h := &pb.ResponseHeader{ClusterId: s.n.ClusterID(), MemberId: s.n.ID()}
	if st, err := s.n.Status(context.Background()); err == nil {
		h.Revision, h.RaftTerm = int64(st.Shards[0].Revision), st.Shards[0].Term
	}
	return h
}

// errSpansShards is the error of a request whose keys are in more than one
// shard.
func errSpansShards(what string) error {
	return status.Errorf(codes.InvalidArgument, "coordkit: %s spans shards; on a cluster with several shards a request must stay within one top-level directory", what)
}

// toGRPC turns coordkit's errors into etcd's, as clientv3 expects them.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range []struct {
		is, to error
	}{
		{coord.ErrCompacted, rpctypes.ErrGRPCCompacted},
		{coord.ErrFutureRevision, rpctypes.ErrGRPCFutureRev},
		{coord.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
		{coord.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
		{coord.ErrRequestTooLarge, rpctypes.ErrGRPCRequestTooLarge},
		{coord.ErrValueTooLarge, rpctypes.ErrGRPCRequestTooLarge},
		{coord.ErrKeyTooLarge, rpctypes.ErrGRPCRequestTooLarge},
		{coord.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
		{coord.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
		{coord.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
		{coord.ErrNoSpace, rpctypes.ErrGRPCNoSpace},
		{coord.ErrOutcomeUnknown, rpctypes.ErrGRPCTimeout},
		{coord.ErrClosed, rpctypes.ErrGRPCStopped},
		{coord.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
		{coord.ErrCorruptAlarm, rpctypes.ErrGRPCCorrupt},
		{coord.ErrMemberExists, rpctypes.ErrGRPCMemberExist},
		{coord.ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
		{coord.ErrQuorum, rpctypes.ErrGRPCUnhealthy},
	} {
		if errors.Is(err, m.is) {
			return m.to
		}
	}
	switch {
	case errors.Is(err, coord.ErrCrossShard):
		return errSpansShards("the request")
	case errors.Is(err, coord.ErrInvalidOption), errors.Is(err, coord.ErrInvalidArgument), errors.Is(err, coord.ErrInvalidTTL):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	case errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	}
	return status.Error(codes.Unknown, err.Error())
}

// unsupported is the error of a request field or RPC coordkit does not
// implement.
func unsupported(what string) error {
	return status.Errorf(codes.Unimplemented, "coordkit: %s is not supported", what)
}

// keyRange turns a v3 key range into coordkit options: end empty is the
// key alone, "\x00" every key from key on, anything else [key, end). empty
// reports a range with no key (end not after key), which etcd answers as
// such, not as an error.
func keyRange(key, end []byte) (opts []coord.OpOption, empty bool) {
	switch {
	case len(end) == 0:
		return nil, false
	case len(end) == 1 && end[0] == 0:
		return []coord.OpOption{coord.WithFromKey()}, false
	case string(end) <= string(key):
		return nil, true
	}
	return []coord.OpOption{coord.WithRange(string(end))}, false
}
