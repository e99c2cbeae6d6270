// Package dnstest is a DNS server on loopback for tests: it answers SRV
// queries from records the test sets, and a resolver that asks it. Tests
// only; production code never imports it.
package dnstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers SRV queries over UDP on 127.0.0.1. Safe for concurrent
// use.
type Server struct {
	conn net.PacketConn

	mu      sync.Mutex
	records map[string][]net.SRV // by lower-case name, with the final dot
	queries int
}

// Start starts a Server; the test's cleanup stops it.
func Start(tb testing.TB) *Server {
	tb.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{conn: conn, records: map[string][]net.SRV{}}
	done := make(chan struct{})
	go s.serve(done)
	tb.Cleanup(func() { conn.Close(); <-done })
	return s
}

// Set makes name's SRV records srvs (none: the name does not exist).
func (s *Server) Set(name string, srvs ...net.SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[canonical(name)] = srvs
}

// Queries is the number of SRV queries answered so far.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// Resolver is a resolver that asks s and nothing else.
func (s *Server) Resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func canonical(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func (s *Server) serve(done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, ok := s.answer(buf[:n]); ok {
			s.conn.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query; ok is false for something that
// is no query.
func (s *Server) answer(query []byte) (_ []byte, ok bool) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	s.mu.Lock()
	srvs, known := s.records[canonical(q.Name.String())]
	if q.Type == dnsmessage.TypeSRV {
		s.queries++
	}
	s.mu.Unlock()
	if !known || len(srvs) == 0 {
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
			RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeNameError})
	}
	if err := b.StartQuestions(); err != nil {
		return nil, false
	}
	if err := b.Question(q); err != nil {
		return nil, false
	}
	if err := b.StartAnswers(); err != nil {
		return nil, false
	}
	if q.Type == dnsmessage.TypeSRV {
		for _, srv := range srvs {
			target, err := dnsmessage.NewName(canonical(srv.Target))
			if err != nil {
				return nil, false
			}
			rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
			if err := b.SRVResource(rh, dnsmessage.SRVResource{Priority: srv.Priority, Weight: srv.Weight, Port: srv.Port, Target: target}); err != nil {
				return nil, false
			}
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}
