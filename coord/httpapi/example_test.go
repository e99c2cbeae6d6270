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

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/httpapi"
)

func ExampleNew() {
	dir, err := os.MkdirTemp("", "httpapi-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	raftAddr := l.Addr().String()
	l.Close()
	ctx := context.Background()
	n, err := coord.Open(ctx, coord.Config{DataDir: dir, RaftAddress: raftAddr, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()

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
