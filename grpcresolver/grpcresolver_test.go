package grpcresolver

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"

	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// checkInterval is how often an instance's health service is asked.
const checkInterval = 100 * time.Millisecond

// server is one instance: a gRPC server whose RPC (health's Check for the
// service "calls") counts the calls it serves, and whose health (service
// "") drives its registration.
type server struct {
	id     string
	srv    *grpc.Server
	health *health.Server
	calls  atomic.Int64
	reg    *registry.Registration
}

// counting is the RPC the client calls: it counts, then answers.
type counting struct {
	healthgrpc.UnimplementedHealthServer
	s *server
}

func (c counting) Check(context.Context, *healthgrpc.HealthCheckRequest) (*healthgrpc.HealthCheckResponse, error) {
	c.s.calls.Add(1)
	return &healthgrpc.HealthCheckResponse{Status: healthgrpc.HealthCheckResponse_SERVING}, nil
}

func startServer(t *testing.T, reg *registry.Registry, id, zone string) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{id: id, srv: grpc.NewServer(), health: health.NewServer()}
	healthgrpc.RegisterHealthServer(s.srv, counting{s: s})
	go s.srv.Serve(lis)
	t.Cleanup(s.srv.Stop)
	ctx := coordtest.Context(t, 30*time.Second)
	s.reg, err = reg.Register(ctx, registry.Instance{Service: "orders", ID: id, Addr: lis.Addr().String(),
		Metadata: map[string]string{"zone": zone}},
		registry.WithCheck(HealthCheck(s.health, "", checkInterval)), registry.KeepRegistered(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.reg.Deregister(context.Background()) })
	return s
}

// call makes one call through conn.
func call(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := healthgrpc.NewHealthClient(conn).Check(ctx, &healthgrpc.HealthCheckRequest{Service: "calls"})
	return err
}

// until makes calls until s's count stays still over a batch of calls
// (it no longer receives any) when still, or grows (it does) when not,
// and returns how long that took.
func until(t *testing.T, ctx context.Context, conn *grpc.ClientConn, s *server, still bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 20*time.Second {
		before := s.calls.Load()
		for range 12 {
			if err := call(ctx, conn); err != nil {
				t.Fatalf("call: %v", err)
			}
		}
		if (s.calls.Load() == before) == still {
			return time.Since(start)
		}
	}
	t.Fatalf("instance %s: calls never %s", s.id, map[bool]string{true: "stopped", false: "started"}[still])
	return 0
}

// TestCallsFollowTheRegistry: a client dialing coordkit:///orders through
// a member of its own spreads its calls over the registered instances;
// an instance whose health check fails stops receiving calls within the
// check interval plus the watch delay, a new one starts receiving them,
// and an instance that deregisters and then stops gracefully fails no
// call.
func TestCallsFollowTheRegistry(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := coordtest.Context(t, 2*time.Minute)
	servers := []*server{
		startServer(t, registry.New(c.Node(0), "/services"), "s0", "a"),
		startServer(t, registry.New(c.Node(1), "/services"), "s1", "a"),
		startServer(t, registry.New(c.Node(2), "/services"), "s2", "b"),
	}
	conn, err := grpc.NewClient(Scheme+":///orders", grpc.WithResolvers(NewBuilder(registry.New(c.Node(2), "/services"))),
		grpc.WithDefaultServiceConfig(RoundRobin), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Spread: every instance serves calls.
	coordtest.Eventually(t, 20*time.Second, func() bool {
		for range 30 {
			if err := call(ctx, conn); err != nil {
				t.Fatalf("call: %v", err)
			}
		}
		return servers[0].calls.Load() > 0 && servers[1].calls.Load() > 0 && servers[2].calls.Load() > 0
	}, "calls did not reach every instance: %d %d %d", servers[0].calls.Load(), servers[1].calls.Load(), servers[2].calls.Load())

	// A failing check: the instance leaves within the interval plus the
	// watch delay (with slack for a loaded machine).
	servers[1].health.SetServingStatus("", healthgrpc.HealthCheckResponse_NOT_SERVING)
	took := until(t, ctx, conn, servers[1], true)
	t.Logf("an instance failing its check stopped receiving calls after %v (check interval %v)", took, checkInterval)
	if bound := checkInterval + 5*time.Second; took > bound {
		t.Fatalf("calls reached a failing instance for %v, more than the check interval and the watch delay (bound %v)", took, bound)
	}
	servers[1].health.SetServingStatus("", healthgrpc.HealthCheckResponse_SERVING)
	until(t, ctx, conn, servers[1], false)

	// A new instance starts receiving calls.
	s3 := startServer(t, registry.New(c.Node(1), "/services"), "s3", "b")
	took = until(t, ctx, conn, s3, false)
	t.Logf("a new instance received calls after %v", took)

	// Graceful deregistration under load: no call fails.
	var failed, made atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				made.Add(1)
				if err := call(ctx, conn); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	s0 := servers[0]
	if err := s0.reg.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	coordtest.Eventually(t, 20*time.Second, func() bool {
		before := s0.calls.Load()
		after := made.Load() + 40
		for made.Load() < after {
			time.Sleep(time.Millisecond)
		}
		return s0.calls.Load() == before
	}, "a deregistered instance kept receiving calls")
	s0.srv.GracefulStop()
	before := made.Load()
	coordtest.Eventually(t, 10*time.Second, func() bool { return made.Load() > before+100 }, "no calls after the stop")
	close(stop)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d calls failed around a graceful deregistration; first: %v", n, made.Load(), firstErr.Load())
	}
	t.Logf("%d calls around a graceful deregistration, none failed", made.Load())
}

// TestTargetQueryFiltersByMetadata: coordkit:///orders?zone=b resolves
// only the instances in zone b; a target without a service is refused.
func TestTargetQueryFiltersByMetadata(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := coordtest.Context(t, time.Minute)
	reg := registry.New(c.Node(0), "/services")
	a, b := startServer(t, reg, "a1", "a"), startServer(t, reg, "b1", "b")
	conn, err := grpc.NewClient(Scheme+":///orders?zone=b", grpc.WithResolvers(NewBuilder(reg)),
		grpc.WithDefaultServiceConfig(RoundRobin), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 20 {
		if err := call(ctx, conn); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 0 || b.calls.Load() != 20 {
		t.Fatalf("calls: zone a %d, zone b %d; want 0 and 20", a.calls.Load(), b.calls.Load())
	}
	bad, err := grpc.NewClient(Scheme+":///", grpc.WithResolvers(NewBuilder(reg)), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err == nil {
		defer bad.Close()
		err = call(ctx, bad)
	}
	if err == nil || !strings.Contains(err.Error(), "want coordkit:///SERVICE") {
		t.Fatalf("a target without a service: %v", err)
	}
}

// fakeCC is the part of a gRPC ClientConn a resolver uses.
type fakeCC struct {
	resolver.ClientConn
	states chan resolver.State
}

func (f *fakeCC) UpdateState(s resolver.State) error { f.states <- s; return nil }
func (f *fakeCC) ReportError(error)                  {}

// TestStatesCarryInstances: each endpoint carries its instance for a
// balancer (InstanceOf); without WithAnyStatus only passing instances are
// given, with it every one.
func TestStatesCarryInstances(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := coordtest.Context(t, time.Minute)
	reg := registry.New(c.Node(0), "/services")
	for _, in := range []registry.Instance{
		{Service: "orders", ID: "w1", Addr: "127.0.0.1:1", Weight: 5, Metadata: map[string]string{"zone": "a"}},
		{Service: "orders", ID: "w2", Addr: "127.0.0.1:2", Status: registry.Critical},
	} {
		g, err := reg.Register(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Deregister(context.Background())
	}
	target := resolver.Target{URL: url.URL{Scheme: Scheme, Path: "/orders"}}
	for _, tc := range []struct {
		opts []Option
		want []string
	}{{nil, []string{"w1"}}, {[]Option{WithAnyStatus()}, []string{"w1", "w2"}}} {
		cc := &fakeCC{states: make(chan resolver.State, 16)}
		r, err := NewBuilder(reg, tc.opts...).Build(target, cc, resolver.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		st := <-cc.states
		r.Close()
		var got []string
		for _, ep := range st.Endpoints {
			in, ok := InstanceOf(ep.Attributes)
			if !ok || in.Addr != ep.Addresses[0].Addr {
				t.Fatalf("endpoint %+v: instance %+v %v", ep, in, ok)
			}
			if in.ID == "w1" && (in.Weight != 5 || in.Metadata["zone"] != "a") {
				t.Fatalf("w1's instance lost its weight or zone: %+v", in)
			}
			got = append(got, in.ID)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") || len(st.Addresses) != len(tc.want) {
			t.Fatalf("options %d: endpoints %v (%d addresses), want %v", len(tc.opts), got, len(st.Addresses), tc.want)
		}
	}
}
