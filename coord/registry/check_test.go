package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestChecksAgainstRealServers runs each kind of check once against local
// servers: HTTP answers of every class, a slow one, TCP, and HTTPS with a
// private CA and with a client certificate through Check.HTTPClient.
func TestChecksAgainstRealServers(t *testing.T) {
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	block := make(chan struct{})
	defer close(block)
	mux := http.NewServeMux()
	mux.Handle("/ok", status(200))
	mux.Handle("/nocontent", status(204))
	mux.Handle("/busy", status(429))
	mux.Handle("/fail", status(500))
	mux.Handle("/gone", status(404))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()

	ca := coordtest.NewCA(t)
	srvTLS, cli := ca.Issue("server"), ca.Issue("client")
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CAFile())
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA: %v", err)
	}
	serverCert, err := tls.LoadX509KeyPair(srvTLS.CertFile, srvTLS.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(cli.CertFile, cli.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	quiet := log.New(io.Discard, "", 0) // refused handshakes are what the test wants
	private := httptest.NewUnstartedServer(mux)
	private.Config.ErrorLog = quiet
	private.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	private.StartTLS()
	defer private.Close()
	mutual := httptest.NewUnstartedServer(mux)
	mutual.Config.ErrorLog = quiet
	mutual.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	mutual.StartTLS()
	defer mutual.Close()
	client := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closedLn, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := closedLn.Addr().String()
	closedLn.Close()
	defer ln.Close()

	cases := []struct {
		name  string
		check Check
		want  Status
	}{
		{"http 200", Check{HTTP: plain.URL + "/ok"}, Passing},
		{"http 204", Check{HTTP: plain.URL + "/nocontent"}, Passing},
		{"http 429", Check{HTTP: plain.URL + "/busy"}, Warning},
		{"http 500", Check{HTTP: plain.URL + "/fail"}, Critical},
		{"http 404", Check{HTTP: plain.URL + "/gone"}, Critical},
		{"http slow", Check{HTTP: plain.URL + "/slow"}, Critical},
		{"http refused", Check{HTTP: "http://" + closed + "/ok"}, Critical},
		{"tcp open", Check{TCP: open}, Passing},
		{"tcp refused", Check{TCP: closed}, Critical},
		{"https, CA unknown to the default client", Check{HTTP: private.URL + "/ok"}, Critical},
		{"https, private CA", Check{HTTP: private.URL + "/ok", HTTPClient: client()}, Passing},
		{"mtls without a client certificate", Check{HTTP: mutual.URL + "/ok", HTTPClient: client()}, Critical},
		{"mtls", Check{HTTP: mutual.URL + "/ok", HTTPClient: client(clientCert)}, Passing},
		{"func", Check{Func: func(context.Context) Status { return Warning }}, Warning},
		{"func with a bad status", Check{Func: func(context.Context) Status { return "sick" }}, Critical},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		got := runOnce(ctx, tc.check)
		cancel()
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: took %v, past its timeout", tc.name, took)
		}
	}
}

// TestHTTPCheckDrivesTheStatus: a registration with an HTTP check follows
// its server's answers, passing, warning, critical and back, and a
// PassingOnly lookup follows them.
func TestHTTPCheckDrivesTheStatus(t *testing.T) {
	c := coordtest.New(t, 1)
	ctx := ctxT(t)
	var code atomic.Int64
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) }))
	defer srv.Close()
	r := New(c.Node(0), "/services")
	g, err := r.Register(ctx, Instance{Service: "web", ID: "w1"},
		WithCheck(Check{HTTP: srv.URL, Interval: 50 * time.Millisecond, Timeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Deregister(context.Background())
	for _, step := range []struct {
		code int
		want Status
	}{{503, Critical}, {429, Warning}, {200, Passing}} {
		code.Store(int64(step.code))
		coordtest.Eventually(t, 10*time.Second, func() bool {
			got, err := r.Lookup(ctx, "web")
			return err == nil && len(got) == 1 && got[0].Status == step.want
		}, "status never became %s after the server answered %d", step.want, step.code)
		passing, err := r.Lookup(ctx, "web", PassingOnly())
		if err != nil || (len(passing) == 1) != (step.want == Passing) {
			t.Fatalf("PassingOnly with %s: %+v %v", step.want, passing, err)
		}
	}
}
