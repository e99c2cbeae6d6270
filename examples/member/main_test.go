package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunBadFlag(t *testing.T) {
	err := run(context.Background(), []string{"--initial-cluster-state", "maybe"}, io.Discard, io.Discard)
	var usage *usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "--initial-cluster-state") {
		t.Fatalf("run = %v, want a usage error naming --initial-cluster-state", err)
	}
}

// TestRunSingleMember starts a one-member cluster in-process, checks that it
// says it is ready and serves the HTTP API, and stops it by cancelling ctx.
func TestRunSingleMember(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a member")
	}
	peer, client := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--name", "solo", "--data-dir", filepath.Join(t.TempDir(), "solo"),
			"--listen-peer-urls", peer, "--listen-client-urls", "http://" + client,
			"--heartbeat-interval", "50", "--election-timeout", "1000"}, &stdout, &stderr)
	}()
	defer func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "member solo ready\n") {
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 30s; stdout %q", stdout.String())
		}
	}
	resp, err := http.Get("http://" + client + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health: %s", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15s of cancel")
	}
	if !strings.Contains(stderr.String(), "member closed") {
		t.Errorf("stderr lacks \"member closed\":\n%s", stderr.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a strings.Builder safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
