package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/httpapi"
)

// exampleNode opens a single-member cluster in a temporary directory.
func exampleNode() (n *coord.Node, closeAll func()) {
	dir, err := os.MkdirTemp("", "httpapi-example-")
	if err != nil {
		log.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	raftAddr := l.Addr().String()
	l.Close()
	n, err = coord.Open(context.Background(), coord.Config{DataDir: dir, RaftAddress: raftAddr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	return n, func() {
		n.Close()
		os.RemoveAll(dir)
	}
}

func ExampleNew() {
	n, closeAll := exampleNode()
	defer closeAll()

	// In production: an http.Server on loopback or behind TLS and auth.
	srv := httptest.NewServer(httpapi.New(n))
	defer srv.Close()

	// call posts a JSON body (nil for a GET) and prints the status.
	call := func(path string, body any, resp any) {
		method, rd := http.MethodGet, io.Reader(nil)
		if body != nil {
			b, _ := json.Marshal(body)
			method, rd = http.MethodPost, bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		req.Header.Set("Content-Type", "application/json")
		r, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer r.Body.Close()
		fmt.Println(path, r.Status)
		if resp != nil {
			if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
				log.Fatal(err)
			}
		}
	}

	// Keys and values are base64 in JSON: a []byte field does that.
	call("/v1/kv/put", map[string]any{"key": []byte("/config/color"), "value": []byte("blue")}, nil)
	var rng struct {
		KVs []struct {
			Key, Value []byte
			Version    int64
		}
		Count int64
	}
	call("/v1/kv/range", map[string]any{"key": []byte("/config/"), "prefix": true}, &rng)
	for _, kv := range rng.KVs {
		fmt.Printf("%s=%s (version %d)\n", kv.Key, kv.Value, kv.Version)
	}

	var e struct {
		Error struct{ Code, Message string }
	}
	call("/v1/kv/put", map[string]any{"key": "", "value": []byte("x")}, &e)
	fmt.Println(e.Error.Code)

	var health struct{ Health bool }
	call("/health", nil, &health)
	fmt.Println("healthy:", health.Health)
	// Output:
	// /v1/kv/put 200 OK
	// /v1/kv/range 200 OK
	// /config/color=blue (version 1)
	// /v1/kv/put 400 Bad Request
	// invalid_argument
	// /health 200 OK
	// healthy: true
}

// A lock is held for as long as the stream that acquired it stays open, as
// with `curl -N`: the first line describes the lock, heartbeats follow.
func ExampleNew_lock() {
	n, closeAll := exampleNode()
	defer closeAll()
	srv := httptest.NewServer(httpapi.New(n))
	defer srv.Close()

	acquire := func(try bool) *http.Response {
		body := fmt.Sprintf(`{"name":"/locks/deploy","ttl_ms":5000,"try":%v}`, try)
		resp, err := srv.Client().Post(srv.URL+"/v1/lock/acquire", "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}
	var line struct {
		Lock struct {
			Name  string
			Fence int64
			Lease int64
		}
	}
	holder := acquire(false) // waits until the lock is free
	if err := json.NewDecoder(holder.Body).Decode(&line); err != nil {
		log.Fatal(err)
	}
	fmt.Println(holder.Header.Get("Content-Type"), line.Lock.Name, "held, fence > 0:", line.Lock.Fence > 0)

	refused := acquire(true)
	var e struct{ Error struct{ Code string } }
	json.NewDecoder(refused.Body).Decode(&e)
	refused.Body.Close()
	fmt.Println("another try:", refused.StatusCode, e.Error.Code)

	// Disconnecting releases the lock (so would POST /v1/lock/release
	// {"lease": line.Lock.Lease}).
	holder.Body.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := acquire(true)
		if r.StatusCode == http.StatusOK {
			r.Body.Close()
			fmt.Println("taken once the holder disconnected")
			break
		}
		r.Body.Close()
		if time.Now().After(deadline) {
			log.Fatal("the lock was not released")
		}
	}
	// Output:
	// application/x-ndjson /locks/deploy held, fence > 0: true
	// another try: 409 locked
	// taken once the holder disconnected
}
