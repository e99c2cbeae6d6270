package etcdv3

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/status"

	"github.com/coordkit/coordkit/coord"
)

type leaseServer struct {
	*Server
	pb.UnimplementedLeaseServer
}

// maxLeaseTTL is etcd's bound on a lease's TTL, in seconds.
const maxLeaseTTL = 9_000_000_000

// LeaseGrant grants a lease of TTL seconds. As etcd does, a TTL below the
// cluster's minimum (twice the election timeout, rounded up to a second)
// is raised to it. coordkit picks the lease's ID: a request naming one is
// refused.
func (s leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if r.ID != 0 {
		return nil, unsupported("choosing a lease's ID")
	}
	if r.TTL > maxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	minTTL := (s.n.MinLeaseTTL() + time.Second - 1) / time.Second
	g, err := s.n.Grant(ctx, max(time.Duration(r.TTL), minTTL)*time.Second)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseGrantResponse{Header: s.header(g.Header), ID: int64(g.ID), TTL: int64(g.TTL / time.Second)}, nil
}

// LeaseRevoke ends a lease and deletes its keys.
func (s leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	if err := s.n.Revoke(ctx, coord.LeaseID(r.ID)); err != nil {
		return nil, toGRPC(err)
	}
	g, err := s.n.Get(ctx, "\x00", coord.WithCountOnly(), coord.WithSerializable())
	if err != nil {
		return &pb.LeaseRevokeResponse{Header: s.emptyHeader()}, nil
	}
	return &pb.LeaseRevokeResponse{Header: s.header(g.Header)}, nil
}

// LeaseKeepAlive renews leases as the stream asks, one response per
// request; a lease that is gone gets TTL 0, as from etcd.
func (s leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if err != nil {
			return nil
		}
		resp := &pb.LeaseKeepAliveResponse{ID: req.ID}
		k, err := s.n.KeepAliveOnce(ctx, coord.LeaseID(req.ID))
		switch {
		case errors.Is(err, coord.ErrLeaseNotFound):
			resp.Header = s.emptyHeader()
		case err != nil:
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return toGRPC(err)
		default:
			resp.Header, resp.TTL = s.header(k.Header), int64(k.TTL/time.Second)
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// LeaseTimeToLive reports a lease's TTLs in seconds, and its keys if asked;
// a lease that is gone has TTL -1, as from etcd.
func (s leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var opts []coord.OpOption
	if r.Keys {
		opts = append(opts, coord.WithAttachedKeys())
	}
	t, err := s.n.TimeToLive(ctx, coord.LeaseID(r.ID), opts...)
	if errors.Is(err, coord.ErrLeaseNotFound) {
		return &pb.LeaseTimeToLiveResponse{Header: s.emptyHeader(), ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.LeaseTimeToLiveResponse{Header: s.header(t.Header), ID: r.ID,
		TTL: int64((t.TTL + time.Second - 1) / time.Second), GrantedTTL: int64(t.GrantedTTL / time.Second)}
	for _, k := range t.Keys {
		resp.Keys = append(resp.Keys, []byte(k))
	}
	return resp, nil
}

// LeaseLeases lists every lease.
func (s leaseServer) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	ls, err := s.n.Leases(ctx)
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := &pb.LeaseLeasesResponse{Header: s.emptyHeader()}
	for _, l := range ls {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{ID: int64(l.ID)})
	}
	return resp, nil
}
