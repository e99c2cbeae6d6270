// Package grpcresolver plugs coordkit's service registry into gRPC: a
// resolver.Builder for targets such as "coordkit:///orders", fed by the
// registry's watch-driven local copy of the service's instances, and a
// registry.Check tied to the standard gRPC health service.
//
// It is a module of its own (github.com/coordkit/coordkit/grpcresolver),
// so that coordkit's core module does not depend on gRPC.
//
// A server registers its instance with its health tied to its health
// service:
//
//	hs := health.NewServer()
//	healthgrpc.RegisterHealthServer(srv, hs)
//	reg, err := registry.New(node, "/services").Register(ctx,
//		registry.Instance{Service: "orders", ID: id, Addr: lis.Addr().String()},
//		registry.WithCheck(grpcresolver.HealthCheck(hs, "", time.Second)),
//		registry.KeepRegistered(0, 0))
//
// A client dials the service by name, through a Node of its own process:
//
//	b := grpcresolver.NewBuilder(registry.New(node, "/services"))
//	conn, err := grpc.NewClient("coordkit:///orders",
//		grpc.WithResolvers(b), grpc.WithDefaultServiceConfig(grpcresolver.RoundRobin),
//		grpc.WithTransportCredentials(creds))
//
// The resolver follows the service from the Node's own replica: no
// polling, no network round per update. It gives gRPC the passing
// instances only (WithAnyStatus gives all), filtered by the target's query
// parameters as metadata ("coordkit:///orders?zone=eu-1" keeps instances
// whose Metadata["zone"] is "eu-1"), and attaches each instance to its
// endpoint's attributes (see InstanceOf) for balancers that use a weight or
// a zone.
package grpcresolver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/attributes"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"

	"github.com/coordkit/coordkit/coord/registry"
)

// Scheme is the target scheme the Builder resolves: "coordkit:///SERVICE".
const Scheme = "coordkit"

// RoundRobin is a service config that spreads calls over every resolved
// instance, for grpc.WithDefaultServiceConfig. (gRPC's default policy,
// pick_first, sends every call to one instance.)
const RoundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Option configures a Builder.
type Option func(*builder)

// WithAnyStatus makes the resolvers give gRPC every instance, passing or
// not, leaving the choice to a balancer that reads InstanceOf.
func WithAnyStatus() Option { return func(b *builder) { b.anyStatus = true } }

// WithRetry sets how long a resolver waits before it tries again to follow
// its service after a failure (no leader reachable at start, a Node that
// is closing). Default 1s.
func WithRetry(d time.Duration) Option { return func(b *builder) { b.retry = d } }

// WithLookupOptions adds filters (registry.WithMetadata, registry.Matching)
// to every resolver the Builder builds, besides the target's query.
func WithLookupOptions(opts ...registry.LookupOption) Option {
	return func(b *builder) { b.filters = append(b.filters, opts...) }
}

type builder struct {
	reg       *registry.Registry
	anyStatus bool
	retry     time.Duration
	filters   []registry.LookupOption
}

// NewBuilder returns a resolver.Builder for Scheme that resolves services
// in reg. Pass it to grpc.NewClient with grpc.WithResolvers, or register it
// process-wide with resolver.Register. It is safe for concurrent use; each
// ClientConn gets a resolver of its own.
func NewBuilder(reg *registry.Registry, opts ...Option) resolver.Builder {
	b := &builder{reg: reg, retry: time.Second}
	for _, o := range opts {
		o(b)
	}
	return b
}

func (b *builder) Scheme() string { return Scheme }

// Build starts following the target's service; it does not block: the
// first state reaches cc once the resolver holds the service's current
// instances. A target names a service as its path ("coordkit:///orders");
// its query parameters filter instances by metadata.
func (b *builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	service := strings.TrimPrefix(target.URL.Path, "/")
	if service == "" {
		service = target.URL.Opaque
	}
	if service == "" || strings.Contains(service, "/") {
		return nil, fmt.Errorf("grpcresolver: target %q: want %s:///SERVICE", target.URL.String(), Scheme)
	}
	opts := append([]registry.LookupOption(nil), b.filters...)
	q := target.URL.Query()
	for _, k := range slices.Sorted(maps.Keys(q)) {
		for _, v := range q[k] {
			opts = append(opts, registry.WithMetadata(k, v))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &grpcResolver{b: b, cc: cc, service: service, opts: opts, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r, nil
}

type grpcResolver struct {
	b       *builder
	cc      resolver.ClientConn
	service string
	opts    []registry.LookupOption
	cancel  context.CancelFunc
	done    chan struct{}
}

// ResolveNow does nothing: the resolver pushes every change as it happens.
func (r *grpcResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close stops the resolver and waits for its goroutine.
func (r *grpcResolver) Close() {
	r.cancel()
	<-r.done
}

// run follows the service until ctx ends, starting again after a
// failure.
func (r *grpcResolver) run(ctx context.Context) {
	defer close(r.done)
	for ctx.Err() == nil {
		err := r.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		r.cc.ReportError(fmt.Errorf("grpcresolver: following %s: %w", r.service, err))
		t := time.NewTimer(r.b.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// follow pushes the service's instances to gRPC at every change, until ctx
// ends or the registry's resolver stops.
func (r *grpcResolver) follow(ctx context.Context) error {
	res, err := r.b.reg.NewResolver(ctx, r.service, r.opts...)
	if err != nil {
		return err
	}
	defer res.Close()
	for {
		changed := res.Changed()
		// An error is the balancer refusing the state (no address, for
		// round_robin): the next change brings another.
		_ = r.cc.UpdateState(r.state(res.Instances()))
		select {
		case <-changed:
		case <-res.Done():
			if err := res.Err(); err != nil {
				return err
			}
			return fmt.Errorf("resolver stopped")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// state holds the instances gRPC may call, in ID order: as Endpoints,
// each with its instance as an attribute, and as Addresses for balancers
// that read only those.
func (r *grpcResolver) state(ins []registry.Instance) resolver.State {
	var st resolver.State
	for _, in := range ins {
		if in.Status != registry.Passing && !r.b.anyStatus {
			continue
		}
		addr := resolver.Address{Addr: in.Addr}
		st.Addresses = append(st.Addresses, addr)
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr},
			Attributes: attributes.New(instanceKey{}, instanceAttr{in})})
	}
	return st
}

type instanceKey struct{}

// instanceAttr is an instance as an attribute value: attributes compare
// values, and an Instance holds a map.
type instanceAttr struct{ in registry.Instance }

// Equal reports whether o is the same version of the same instance.
func (a instanceAttr) Equal(o any) bool {
	b, ok := o.(instanceAttr)
	return ok && a.in.ID == b.in.ID && a.in.Revision == b.in.Revision && a.in.Service == b.in.Service
}

// InstanceOf returns the registry instance behind a resolved endpoint, from
// the Attributes of the resolver.Endpoint gRPC hands a balancer.
func InstanceOf(attrs *attributes.Attributes) (registry.Instance, bool) {
	a, ok := attrs.Value(instanceKey{}).(instanceAttr)
	return a.in, ok
}

// HealthCheck is a registry.Check that asks h, the server's own health
// service (google.golang.org/grpc/health's Server), for service's status
// ("" for the whole server) every interval: SERVING is passing, anything
// else critical. A server that calls SetServingStatus(NOT_SERVING) before
// it stops thus leaves the resolvers within interval plus the watch delay.
func HealthCheck(h healthgrpc.HealthServer, service string, interval time.Duration) registry.Check {
	return registry.Check{Interval: interval, Func: func(ctx context.Context) registry.Status {
		resp, err := h.Check(ctx, &healthgrpc.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != healthgrpc.HealthCheckResponse_SERVING {
			return registry.Critical
		}
		return registry.Passing
	}}
}
