package grpcresolver_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/registry"
	"github.com/coordkit/coordkit/grpcresolver"
)

// A gRPC server registers its instance with its health tied to its health
// service; a client dials the service by name.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := coordtest.Start(ctx, 1) // in a service: coord.Open
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	services := registry.New(c.Node(0), "/services")

	// The server.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv, hs := grpc.NewServer(), health.NewServer()
	healthgrpc.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	defer srv.Stop()
	reg, err := services.Register(ctx, registry.Instance{Service: "orders", ID: "orders-1", Addr: lis.Addr().String()},
		registry.WithCheck(grpcresolver.HealthCheck(hs, "", time.Second)), registry.KeepRegistered(0, 0))
	if err != nil {
		log.Fatal(err)
	}
	defer reg.Deregister(context.Background())

	// The client.
	conn, err := grpc.NewClient("coordkit:///orders", grpc.WithResolvers(grpcresolver.NewBuilder(services)),
		grpc.WithDefaultServiceConfig(grpcresolver.RoundRobin), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var p peer.Peer
	resp, err := healthgrpc.NewHealthClient(conn).Check(ctx, &healthgrpc.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus(), "from the registered address:", p.Addr.String() == lis.Addr().String())
	// Output: SERVING from the registered address: true
}
