package coord_test

import (
	"io"
	"log/slog"
	"net"
	"testing"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func freeAddr(t *testing.T) string {
	a, err := freeListener()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// freeListener returns a loopback address whose port is free right now.
func freeListener() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
