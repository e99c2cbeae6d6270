package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/election"
	"github.com/coordkit/coordkit/coord/lock"
)

// coordkitSystem is a coordkit cluster embedded in this process, driven
// through coord.Node, coord/lock and coord/election directly (no network
// between client and member).
type coordkitSystem struct {
	nodes []*coord.Node
	stop  func()
}

var (
	_ casSystem   = (*coordkitSystem)(nil)
	_ watchSystem = (*coordkitSystem)(nil)
	_ leaseSystem = (*coordkitSystem)(nil)
)

func startCoordkit(voters int) (*coordkitSystem, error) {
	nodes, stop, err := coordCluster(voters, nil)
	if err != nil {
		return nil, err
	}
	return &coordkitSystem{nodes: nodes, stop: stop}, nil
}

func (s *coordkitSystem) members() int { return len(s.nodes) }
func (s *coordkitSystem) close()       { s.stop() }

func (s *coordkitSystem) put(ctx context.Context, m int, key string, value []byte) error {
	_, err := s.nodes[m].Put(ctx, key, value)
	return err
}

func (s *coordkitSystem) get(ctx context.Context, m int, key string, serializable bool) error {
	var err error
	if serializable {
		_, err = s.nodes[m].Get(ctx, key, coord.WithSerializable())
	} else {
		_, err = s.nodes[m].Get(ctx, key)
	}
	return err
}

func (s *coordkitSystem) modRev(ctx context.Context, m int, key string) (int64, error) {
	r, err := s.nodes[m].Get(ctx, key)
	if err != nil || len(r.KVs) == 0 {
		return 0, err
	}
	return int64(r.KVs[0].ModRevision), nil
}

func (s *coordkitSystem) cas(ctx context.Context, m int, key string, rev int64, value []byte) (int64, bool, error) {
	r, err := s.nodes[m].Txn(ctx).
		If(coord.Compare(coord.ModRevision(key), "=", coord.Revision(rev))).
		Then(coord.OpPut(key, value)).
		Commit()
	if err != nil {
		return 0, false, err
	}
	return int64(r.Header.Revision), r.Succeeded, nil
}

func (s *coordkitSystem) revision(ctx context.Context, m int) (int64, error) {
	r, err := s.nodes[m].Get(ctx, "/bench")
	if err != nil {
		return 0, err
	}
	return int64(r.Header.Revision), nil
}

func (s *coordkitSystem) watch(ctx context.Context, m int, key string, after int64, fn func([]byte), fail func(error)) error {
	ch := s.nodes[m].Watch(ctx, key, coord.WithRev(coord.Revision(after+1)))
	go func() {
		for resp := range ch {
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil && !errors.Is(err, coord.ErrClosed) {
					fail(err)
				}
				return
			}
			for _, ev := range resp.Events {
				fn(ev.KV.Value)
			}
		}
		if ctx.Err() == nil {
			fail(fmt.Errorf("coordkit watch on %q closed early", key))
		}
	}()
	return nil
}

func (s *coordkitSystem) grantKeepAlive(ctx context.Context, m int, ttl time.Duration) error {
	g, err := s.nodes[m].Grant(ctx, ttl)
	if err != nil {
		return err
	}
	_, err = s.nodes[m].KeepAliveOnce(ctx, g.ID)
	return err
}

var _ lockSystem = (*coordkitSystem)(nil)

// coordkitMutex is a lock.Mutex in its own session (default TTL 60s, as
// etcd's concurrency package).
type coordkitMutex struct {
	s *coord.Session
	m *lock.Mutex
}

func (s *coordkitSystem) newMutex(ctx context.Context, m int, name string) (mutex, error) {
	sess, err := s.nodes[m].NewSession(ctx)
	if err != nil {
		return nil, err
	}
	return &coordkitMutex{s: sess, m: lock.NewMutex(sess, name)}, nil
}

func (m *coordkitMutex) lock(ctx context.Context) error   { return m.m.Lock(ctx) }
func (m *coordkitMutex) unlock(ctx context.Context) error { return m.m.Unlock(ctx) }
func (m *coordkitMutex) close()                           { closeSession(m.s) }

// coordkitCandidate is an election.Election candidate in its own session.
type coordkitCandidate struct {
	s *coord.Session
	e *election.Election
}

func (s *coordkitSystem) newCandidate(ctx context.Context, m int, name string) (candidate, error) {
	sess, err := s.nodes[m].NewSession(ctx)
	if err != nil {
		return nil, err
	}
	return &coordkitCandidate{s: sess, e: election.New(sess, name)}, nil
}

func (c *coordkitCandidate) campaign(ctx context.Context) error {
	return c.e.Campaign(ctx, []byte("leader"))
}
func (c *coordkitCandidate) resign(ctx context.Context) error { return c.e.Resign(ctx) }
func (c *coordkitCandidate) close()                           { closeSession(c.s) }

func closeSession(s *coord.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Close(ctx)
}
