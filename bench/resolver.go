package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"

	"github.com/coordkit/coordkit/coord/registry"
	"github.com/coordkit/coordkit/grpcresolver"
	etcdresolver "go.etcd.io/etcd/client/v3/naming/resolver"
)

// grpcSystem is a system with a gRPC resolver over its registry: coordkit's
// grpcresolver, and etcd's naming/resolver.
type grpcSystem interface {
	serviceSystem
	// resolverFor returns a resolver.Builder that resolves through member,
	// and the target naming service in it.
	resolverFor(member int, service string) (resolver.Builder, string, error)
}

var (
	_ grpcSystem = (*coordkitSystem)(nil)
	_ grpcSystem = (*etcdSystem)(nil)
)

func (s *coordkitSystem) resolverFor(m int, service string) (resolver.Builder, string, error) {
	return grpcresolver.NewBuilder(registry.New(s.nodes[m], registryPrefix)), grpcresolver.Scheme + ":///" + service, nil
}

func (s *etcdSystem) resolverFor(m int, service string) (resolver.Builder, string, error) {
	b, err := etcdresolver.NewBuilder(s.clients[m])
	return b, "etcd:///" + registryPrefix + service, err
}

// observedBuilder hands the states its resolvers give gRPC to a stateLog
// as well, so that a workload sees when gRPC learns of a change.
type observedBuilder struct {
	resolver.Builder
	log *stateLog
}

func (b observedBuilder) Build(t resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return b.Builder.Build(t, observedCC{cc, b.log}, o)
}

type observedCC struct {
	resolver.ClientConn
	log *stateLog
}

func (c observedCC) UpdateState(s resolver.State) error {
	var addrs []string
	for _, a := range s.Addresses {
		addrs = append(addrs, a.Addr)
	}
	for _, e := range s.Endpoints {
		for _, a := range e.Addresses {
			if !slices.Contains(addrs, a.Addr) {
				addrs = append(addrs, a.Addr)
			}
		}
	}
	c.log.set(addrs)
	return c.ClientConn.UpdateState(s)
}

// stateLog is the sets of addresses a resolver gave gRPC, with when.
type stateLog struct {
	mu      sync.Mutex
	states  []state // since the last trim
	changed chan struct{}
}

type state struct {
	at    time.Time
	addrs []string
}

func (l *stateLog) set(addrs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states = append(l.states, state{time.Now(), addrs})
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor blocks until a state given at from or later satisfies ok, or ctx
// ends, and returns when the first such state was given. It forgets the
// states before that one.
func (l *stateLog) waitFor(ctx context.Context, from time.Time, ok func([]string) bool) (time.Time, error) {
	for {
		l.mu.Lock()
		ch := l.changed
		for i, st := range l.states {
			if !st.at.Before(from) && ok(st.addrs) {
				l.states = l.states[i:]
				l.mu.Unlock()
				return st.at, nil
			}
		}
		var last []string
		if n := len(l.states); n > 0 {
			last = l.states[n-1].addrs
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("waiting for the resolver: %w (addresses %v)", ctx.Err(), last)
		}
	}
}

// resolverLoad measures how soon a gRPC client stops calling an instance
// that is gone: 3 instances (gRPC servers on loopback) of a service are
// registered through member 0; a ClientConn resolves the service through
// member 1. Each op deregisters one instance and lasts until the resolver
// has handed gRPC a state without it (gRPC's balancer picks from that state
// on), which may be before the deregistration returns (it also ends the
// instance's session); the instance is then registered again, unmeasured,
// and the next op takes the next instance.
func resolverLoad(p params, s system) figure {
	gs, ok := s.(grpcSystem)
	if !ok {
		return figure{na: "n/a (no gRPC resolver)"}
	}
	const instances, service = 3, "grpc"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+2*p.duration)
	defer cancel()
	var addrs []string
	for range instances {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return figure{err: err}
		}
		srv := grpc.NewServer()
		go srv.Serve(lis)
		defer srv.Stop()
		addrs = append(addrs, lis.Addr().String())
	}
	deregs := make([]func(context.Context) error, instances)
	register := func(i int) error {
		d, err := gs.register(ctx, 0, service, "i"+strconv.Itoa(i), addrs[i])
		deregs[i] = d
		return err
	}
	defer func() {
		for _, d := range deregs {
			if d != nil {
				d(context.Background())
			}
		}
	}()
	for i := range instances {
		if err := register(i); err != nil {
			return figure{err: fmt.Errorf("registering instance %d: %w", i, err)}
		}
	}
	b, target, err := gs.resolverFor(min(1, s.members()-1), service)
	if err != nil {
		return figure{err: err}
	}
	log := &stateLog{changed: make(chan struct{})}
	conn, err := grpc.NewClient(target, grpc.WithResolvers(observedBuilder{b, log}),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(grpcresolver.RoundRobin))
	if err != nil {
		return figure{err: err}
	}
	defer conn.Close()
	conn.Connect()
	has := func(addr string, want bool) func([]string) bool {
		return func(got []string) bool { return slices.Contains(got, addr) == want }
	}
	if _, err := log.waitFor(ctx, time.Time{}, func(got []string) bool { return len(got) == instances }); err != nil {
		return figure{err: err}
	}
	var lat []time.Duration
	warmEnd := time.Now().Add(p.duration / 5)
	end := warmEnd.Add(p.duration)
	for i := 0; time.Now().Before(end) || len(lat) == 0 && ctx.Err() == nil; i++ {
		k := i % instances
		t0 := time.Now()
		if err := deregs[k](ctx); err != nil {
			return figure{err: fmt.Errorf("deregistering: %w", err)}
		}
		deregs[k] = nil
		gone, err := log.waitFor(ctx, t0, has(addrs[k], false))
		if err != nil {
			return figure{err: err}
		}
		if t0.After(warmEnd) {
			lat = append(lat, gone.Sub(t0))
		}
		t1 := time.Now()
		if err := register(k); err != nil {
			return figure{err: fmt.Errorf("registering again: %w", err)}
		}
		if _, err := log.waitFor(ctx, t1, has(addrs[k], true)); err != nil {
			return figure{err: err}
		}
	}
	r := result{ops: int64(len(lat)), elapsed: p.duration}
	r.p50, r.p99 = percentiles(lat)
	return figure{result: r}
}
