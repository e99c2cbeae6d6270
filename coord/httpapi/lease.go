package httpapi

import (
	"context"
	"fmt"
	"time"

	"github.com/coordkit/coordkit/coord"
)

type leaseGrantRequest struct {
	TTLMs int64 `json:"ttl_ms"`
}

type leaseIDRequest struct {
	ID int64 `json:"id"`
}

type leaseTimeToLiveRequest struct {
	ID   int64 `json:"id"`
	Keys bool  `json:"keys"`
}

type leaseResponse struct {
	ID    int64 `json:"id"`
	TTLMs int64 `json:"ttl_ms"`
}

type leaseTimeToLiveResponse struct {
	ID           int64    `json:"id"`
	TTLMs        int64    `json:"ttl_ms"`
	GrantedTTLMs int64    `json:"granted_ttl_ms"`
	Keys         [][]byte `json:"keys"`
}

type leasesResponse struct {
	Leases []leaseResponse `json:"leases"`
}

func (a *api) leaseGrant(ctx context.Context, req *leaseGrantRequest) (any, error) {
	if req.TTLMs <= 0 {
		// 0 would otherwise pick a default: a lease's TTL is always chosen.
		return nil, fmt.Errorf("%w: ttl_ms %d is not positive", coord.ErrInvalidTTL, req.TTLMs)
	}
	ttl, err := millis("ttl_ms", req.TTLMs, 0)
	if err != nil {
		return nil, err
	}
	g, err := a.n.Grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return leaseResponse{ID: int64(g.ID), TTLMs: g.TTL.Milliseconds()}, nil
}

func (a *api) leaseKeepAlive(ctx context.Context, req *leaseIDRequest) (any, error) {
	if err := checkLease(req.ID); err != nil {
		return nil, err
	}
	k, err := a.n.KeepAliveOnce(ctx, coord.LeaseID(req.ID))
	if err != nil {
		return nil, err
	}
	return leaseResponse{ID: int64(k.ID), TTLMs: k.TTL.Milliseconds()}, nil
}

func (a *api) leaseRevoke(ctx context.Context, req *leaseIDRequest) (any, error) {
	if err := checkLease(req.ID); err != nil {
		return nil, err
	}
	if err := a.n.Revoke(ctx, coord.LeaseID(req.ID)); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func (a *api) leaseTimeToLive(ctx context.Context, req *leaseTimeToLiveRequest) (any, error) {
	if err := checkLease(req.ID); err != nil {
		return nil, err
	}
	var opts []coord.OpOption
	if req.Keys {
		opts = append(opts, coord.WithAttachedKeys())
	}
	t, err := a.n.TimeToLive(ctx, coord.LeaseID(req.ID), opts...)
	if err != nil {
		return nil, err
	}
	out := leaseTimeToLiveResponse{ID: int64(t.ID), TTLMs: ceilMillis(t.TTL), GrantedTTLMs: t.GrantedTTL.Milliseconds(), Keys: make([][]byte, 0, len(t.Keys))}
	for _, k := range t.Keys {
		out.Keys = append(out.Keys, []byte(k))
	}
	return out, nil
}

// ceilMillis rounds a remaining TTL up, so that a live lease never reads 0.
func ceilMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

func (a *api) leases(ctx context.Context) (any, error) {
	ls, err := a.n.Leases(ctx)
	if err != nil {
		return nil, err
	}
	out := leasesResponse{Leases: make([]leaseResponse, 0, len(ls))}
	for _, l := range ls {
		out.Leases = append(out.Leases, leaseResponse{ID: int64(l.ID), TTLMs: l.TTL.Milliseconds()})
	}
	return out, nil
}
