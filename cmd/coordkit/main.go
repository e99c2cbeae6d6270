// Command coordkit runs one coordkit member as a process, configured with
// etcd's member flags, and serves, on its client URL, the HTTP API
// (coord/httpapi) that cmd/coordctl talks to and etcd's v3 gRPC API
// (github.com/coordkit/coordkit/etcdv3) that etcdctl and etcd's client
// libraries talk to. It is what examples/cluster deploys.
//
// It is a module of its own, so that coordkit's core module does not
// depend on gRPC:
//
//	go install github.com/coordkit/coordkit/cmd/coordkit@latest
//
// One member with the defaults (Raft on 127.0.0.1:2380, HTTP on
// 127.0.0.1:2379, data in ./default.coordkit):
//
//	go run ./cmd/coordkit
//
// One of three members founding a cluster:
//
//	go run ./cmd/coordkit --name m1 --data-dir data/m1 \
//		--listen-peer-urls http://127.0.0.1:12380 \
//		--listen-client-urls http://127.0.0.1:12379 \
//		--initial-cluster m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380 \
//		--initial-cluster-token demo --initial-cluster-state new
//
// A member added with "coordctl member add NAME ADDR [--observer]" starts
// with --initial-cluster-state existing (and --observer for an observer).
// A restart with the same --data-dir resumes the member with its data.
//
// Topics published through the HTTP API under /topics (its default prefix)
// are trimmed by their retention (coordctl topic retention) every
// --pubsub-retention-interval (default 5s) by the member that leads their
// shard, whether or not anything is published to them. The leader of each
// shard also starts an integrity check every --corrupt-check-time (default
// 30m; coordctl check hash starts one at once).
//
// --restore FILE loads a backup (coordctl snapshot save, GET /v1/snapshot)
// into a new cluster, as etcdutl snapshot restore prepares one: on the
// member's first start (its --data-dir missing or empty; the flag needs
// --initial-cluster-state new), once the cluster is ready and before the
// member says so, it writes the backup's keys through Raft with
// coord.Node.Restore, prints "member restored N keys from FILE (M attached
// to leases skipped)", and serves on. Give it to one founding member: if
// the cluster holds keys already (another member restored it, or the
// cluster is not new), the backup is not loaded, a warning is logged, and
// the member serves on. Later starts ignore the flag, so it may stay on
// the command line. A restore that fails stops the member with status 1:
// if nothing was written (a backup that is not complete and intact, say),
// restart the member and load a backup with coordctl snapshot restore; if
// it failed midway, the cluster holds part of the backup: stop its
// members, empty their data directories and start again.
//
// The flags, as in etcd (coordkit -h describes them): --name, --data-dir,
// --listen-peer-urls (the Raft address, which peers also dial),
// --listen-client-urls (the HTTP API; empty for none), --initial-cluster,
// --initial-cluster-token, --initial-cluster-state new|existing, --observer,
// --peer-trusted-ca-file, --peer-cert-file and --peer-key-file (peer mutual
// TLS: all three or none), --insecure-peers, --shards, --heartbeat-interval
// and --election-timeout (milliseconds), --log-level debug|info|warn|error.
// A URL flag takes one host:port, with or without http:// or https://.
//
// Without --client-cert-auth or --bearer-token-file the HTTP API has no
// authentication: keep --listen-client-urls on loopback or on a network
// only trusted clients reach. The etcd API (--etcd-api, on by default) has
// the same TLS and client certificates; etcd clients cannot send the
// bearer token, so with --bearer-token-file and without --client-cert-auth
// it is not served.
//
// Once the cluster has a leader for every shard and this member has caught
// up, it prints "member NAME ready"; until then it waits, as long as it
// takes, logging the wait every 5 s (the HTTP API already answers: /health
// is 503 until every shard has a leader, linearizable requests wait for
// one). SIGINT or SIGTERM shuts the HTTP server down and closes the
// member; the exit status is then 0. A bad flag exits with status 2, any
// other failure with 1. Logs go to stderr as slog text.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/httpapi"
	"github.com/coordkit/coordkit/coord/metrics"
	"github.com/coordkit/coordkit/coord/pubsub"
	"github.com/coordkit/coordkit/etcdv3"
)

const (
	// readyWarnAfter: a wait for the cluster this long is logged as a
	// warning.
	readyWarnAfter = 60 * time.Second
	// readyLogEvery is how often the wait for the cluster is logged.
	readyLogEvery = 5 * time.Second
	// shutdownTimeout bounds the HTTP server's graceful shutdown.
	shutdownTimeout = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process at once, as by default
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "member: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "member: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program: it returns when ctx ends (after a clean
// shutdown, with nil) or on a failure. Errors for a bad command line are
// *usageError.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	o.cfg.Logger = log

	// Bind the client port before opening the member, so that a port in
	// use fails at once rather than after the member has joined.
	var ln net.Listener
	if o.clientAddr != "" {
		if ln, err = net.Listen("tcp", o.clientAddr); err != nil {
			return fmt.Errorf("--listen-client-urls: %w", err)
		}
		defer ln.Close() // no-op once the server owns and closes it
	}

	// --restore acts on the first start only: whether this is one is known
	// before Open creates the data directory.
	fresh := o.restore != "" && emptyDir(o.cfg.DataDir)
	log.Info("opening member", "name", o.cfg.Name, "data-dir", o.cfg.DataDir, "peer", o.cfg.RaftAddress,
		"client", o.clientAddr, "join", o.cfg.Join, "observer", o.cfg.Observer)
	node, err := coord.Open(ctx, o.cfg)
	if err != nil {
		return flagError(err)
	}
	defer func() {
		if err := node.Close(); err != nil && !errors.Is(err, coord.ErrClosed) {
			log.Warn("closing member", "err", err)
			return
		}
		log.Info("member closed")
	}()

	serveErr := make(chan error, 1)
	var srv *http.Server
	// Streams (watches, held locks) end with an "unavailable" line when the
	// member shuts down, instead of holding up Shutdown.
	base, stopStreams := context.WithCancelCause(context.Background())
	defer stopStreams(nil)
	if ln != nil {
		// Refuse cross-origin requests a browser on this host would send
		// on a web page's behalf.
		var handler http.Handler = http.NewCrossOriginProtection().Handler(clientMux(node, o))
		if o.etcdAPI {
			grpcSrv := grpc.NewServer()
			scheme := "http"
			if o.clientTLS != nil {
				scheme = "https"
			}
			peerScheme := "http"
			if o.cfg.TLS != nil {
				peerScheme = "https"
			}
			etcdv3.Register(grpcSrv, node, etcdv3.WithClientURLs(scheme+"://"+ln.Addr().String()), etcdv3.WithPeerScheme(peerScheme))
			defer grpcSrv.Stop() // ends its streams (watches, keep-alives), which Shutdown would wait for
			handler = withGRPC(grpcSrv, handler)
		}
		protocols := new(http.Protocols)
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
		protocols.SetUnencryptedHTTP2(true) // gRPC on an http:// URL: etcdctl speaks HTTP/2 without TLS
		srv = &http.Server{
			BaseContext:       func(net.Listener) context.Context { return base },
			Handler:           handler,
			Protocols:         protocols,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		if o.clientTLS != nil {
			ln = tls.NewListener(ln, o.clientTLS)
		}
		go func() { serveErr <- srv.Serve(ln) }()
		log.Info("serving HTTP API", "address", ln.Addr().String(), "etcd_api", o.etcdAPI, "tls", o.clientTLS != nil,
			"client_cert_auth", o.clientTLS != nil && o.clientTLS.ClientCAs != nil, "bearer_token", o.bearer != "", "pprof", o.pprof)
		if !loopback(ln.Addr()) && o.bearer == "" && (o.clientTLS == nil || o.clientTLS.ClientCAs == nil) {
			log.Warn("the HTTP API has no authentication: anyone who can reach it can read and write every key and change membership; use --client-cert-auth or --bearer-token-file", "address", ln.Addr().String())
		}
	}

	if err := waitReady(ctx, node, log); err != nil {
		stopStreams(httpapi.ErrShuttingDown)
		if ctx.Err() != nil { // interrupted while waiting: a normal stop
			log.Info("shutting down before ready", "cause", context.Cause(ctx))
			return shutdown(srv, log)
		}
		shutdown(srv, log)
		return err
	}
	if o.restore != "" {
		if err := restoreBackup(ctx, node, o.restore, fresh, stdout, log); err != nil {
			stopStreams(httpapi.ErrShuttingDown)
			shutdown(srv, log)
			return err
		}
	}
	log.Info(fmt.Sprintf("member %s ready", o.cfg.Name))
	fmt.Fprintf(stdout, "member %s ready\n", o.cfg.Name)
	if o.retentionEvery > 0 {
		rctx, stopRetention := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			runRetention(rctx, node, o.retentionEvery, log)
		}()
		defer func() { stopRetention(); <-done }()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
		stopStreams(httpapi.ErrShuttingDown)
		return shutdown(srv, log)
	case <-node.Done(): // the member stopped itself: its Err says why
		stopStreams(httpapi.ErrShuttingDown)
		if err := shutdown(srv, log); err != nil {
			log.Warn("HTTP server shutdown", "err", err)
		}
		return fmt.Errorf("member stopped: %w", node.Err())
	case err := <-serveErr:
		return fmt.Errorf("HTTP server: %w", err)
	}
}

// runRetention applies the retention of the topics the HTTP API keeps
// under its default prefix, every interval, while this member leads their
// shard (pubsub.PubSub.RunRetention), until ctx ends or the node closes.
func runRetention(ctx context.Context, node *coord.Node, every time.Duration, log *slog.Logger) {
	ps := pubsub.New(node, httpapi.DefaultTopicsPrefix)
	err := ps.RunRetention(ctx, every, pubsub.OnTrim(func(topic string, removed int, err error) {
		if err != nil {
			log.Warn("topic retention not applied; retried at the next interval", "topic", topic, "removed", removed, "err", err)
			return
		}
		log.Debug("topic trimmed by its retention", "topic", topic, "removed", removed)
	}))
	if err != nil && ctx.Err() == nil && !errors.Is(err, coord.ErrClosed) {
		log.Error("topic retention stopped", "err", err)
	}
}

// withGRPC sends gRPC requests (HTTP/2, application/grpc) to grpcSrv and
// the others to h: etcd's v3 API and the JSON API share the client URL,
// as etcd serves its gRPC API and its gateway on one port.
func withGRPC(grpcSrv *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			grpcSrv.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clientMux serves the HTTP API at /, Prometheus metrics at /metrics, and
// pprof under /debug/pprof/ when asked. /metrics, like /health, needs no
// bearer token (as etcd's /metrics), so a scraper needs no secret; it
// tells nothing about keys or values.
func clientMux(node *coord.Node, o *options) http.Handler {
	var opts []httpapi.Option
	if o.bearer != "" {
		opts = append(opts, httpapi.BearerToken(o.bearer))
	}
	mux := http.NewServeMux()
	mux.Handle("/", httpapi.New(node, opts...))
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(node), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if o.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// waitReady waits for node.Ready until ctx ends, as etcd waits for its
// cluster: members of a new cluster may be started by hand, one after
// another. It logs the wait every readyLogEvery, as a warning once it has
// lasted readyWarnAfter.
func waitReady(ctx context.Context, node *coord.Node, log *slog.Logger) error {
	start := time.Now()
	for {
		stepEnd := time.Now().Add(readyLogEvery)
		step, cancel := context.WithDeadline(ctx, stepEnd)
		err := node.Ready(step)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, coord.ErrClosed):
			return err
		}
		// Ready may fail before the step's deadline (no leader yet): try
		// again shortly, without spinning, and log only once per step.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(250*time.Millisecond, time.Until(stepEnd))):
		}
		if !time.Now().Before(stepEnd) {
			waited := time.Since(start)
			level := slog.LevelInfo
			if waited >= readyWarnAfter {
				level = slog.LevelWarn
			}
			log.Log(ctx, level, "waiting for the cluster: a leader for every shard, and this member caught up (are a quorum of members running and reachable?)",
				"waited", waited.Round(time.Second), "err", err)
		}
	}
}

// restoreBackup loads the backup at path into the cluster (--restore) on
// this member's first start (fresh), and says so on stdout. It leaves a
// cluster that already holds keys alone, with a warning: another founding
// member restored it first, or the cluster is not new. Later starts ignore
// the flag, so that it may stay in a member's command line.
func restoreBackup(ctx context.Context, node *coord.Node, path string, fresh bool, stdout io.Writer, log *slog.Logger) error {
	if !fresh {
		log.Info("--restore ignored: this member has started before (its data directory is not new)", "file", path)
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--restore: %w", err)
	}
	defer f.Close()
	log.Info("restoring the backup", "file", path)
	res, err := node.Restore(ctx, f)
	switch {
	case errors.Is(err, coord.ErrNotEmpty):
		log.Warn("--restore: the backup is not loaded: the cluster already holds keys (did another member restore it?)", "file", path, "err", err)
		return nil
	case err != nil && res != nil && res.Keys > 0:
		return fmt.Errorf("--restore %s: %w; the cluster holds part of the backup: stop its members, empty their data directories and start again", path, err)
	case err != nil:
		return fmt.Errorf("--restore %s: %w; nothing was restored (later starts ignore --restore: load a backup into the running cluster with coordctl snapshot restore)", path, err)
	}
	log.Info("restored the backup", "file", path, "keys", res.Keys, "skipped_lease", res.SkippedLease)
	fmt.Fprintf(stdout, "member restored %d keys from %s (%d attached to leases skipped)\n", res.Keys, path, res.SkippedLease)
	return nil
}

// emptyDir reports whether dir is missing or empty.
func emptyDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	return errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0)
}

// shutdown stops the HTTP server gracefully, if there is one.
func shutdown(srv *http.Server, log *slog.Logger) error {
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("HTTP server shutdown", "err", err)
		return srv.Close()
	}
	return nil
}

func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
