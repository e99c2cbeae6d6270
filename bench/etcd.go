package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// etcdSystem is an etcd cluster embedded in this process (server/v3/embed),
// each member with its own client and peer port on loopback, driven over
// gRPC through one clientv3 client per member.
type etcdSystem struct {
	dir     string
	servers []*embed.Etcd
	clients []*clientv3.Client
}

var (
	_ casSystem   = (*etcdSystem)(nil)
	_ watchSystem = (*etcdSystem)(nil)
	_ leaseSystem = (*etcdSystem)(nil)
	_ lockSystem  = (*etcdSystem)(nil)
)

// startEtcd starts n etcd members with default settings (100ms heartbeat,
// 1s election timeout, fsync on) except for quiet logging.
func startEtcd(n int) (*etcdSystem, error) {
	dir, err := os.MkdirTemp("", "etcd-bench-")
	if err != nil {
		return nil, err
	}
	s := &etcdSystem{dir: dir}
	peers := make([]url.URL, n)
	clients := make([]url.URL, n)
	var initial []string
	for i := range n {
		pa, err := freeAddr()
		if err != nil {
			return nil, err
		}
		ca, err := freeAddr()
		if err != nil {
			return nil, err
		}
		peers[i] = url.URL{Scheme: "http", Host: pa}
		clients[i] = url.URL{Scheme: "http", Host: ca}
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i].String()))
	}
	s.servers = make([]*embed.Etcd, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cfg.ListenPeerUrls = []url.URL{peers[i]}
		cfg.AdvertisePeerUrls = []url.URL{peers[i]}
		cfg.ListenClientUrls = []url.URL{clients[i]}
		cfg.AdvertiseClientUrls = []url.URL{clients[i]}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "etcd-bench"
		cfg.Logger = "zap"
		cfg.LogLevel = "error"
		// Errors go to a file next to the data: at shutdown etcd logs its
		// closed listeners at error level.
		cfg.LogOutputs = []string{filepath.Join(dir, cfg.Name+".log")}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.servers[i], errs[i] = embed.StartEtcd(cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.close()
		return nil, err
	}
	for _, e := range s.servers {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			s.close()
			return nil, err
		case <-time.After(60 * time.Second):
			s.close()
			return nil, errors.New("etcd: members not ready after 60s")
		}
	}
	for i := range n {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{clients[i].String()},
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			s.close()
			return nil, err
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

func (s *etcdSystem) members() int { return len(s.servers) }

func (s *etcdSystem) close() {
	for _, c := range s.clients {
		c.Close()
	}
	// One at a time: closed together, leaders wait seconds to hand off
	// leadership to members that are closing too.
	for _, e := range s.servers {
		if e != nil {
			e.Close()
		}
	}
	os.RemoveAll(s.dir)
}

func (s *etcdSystem) put(ctx context.Context, m int, key string, value []byte) error {
	_, err := s.clients[m].Put(ctx, key, string(value))
	return err
}

func (s *etcdSystem) get(ctx context.Context, m int, key string, serializable bool) error {
	var err error
	if serializable {
		_, err = s.clients[m].Get(ctx, key, clientv3.WithSerializable())
	} else {
		_, err = s.clients[m].Get(ctx, key)
	}
	return err
}

func (s *etcdSystem) modRev(ctx context.Context, m int, key string) (int64, error) {
	r, err := s.clients[m].Get(ctx, key)
	if err != nil || len(r.Kvs) == 0 {
		return 0, err
	}
	return r.Kvs[0].ModRevision, nil
}

func (s *etcdSystem) cas(ctx context.Context, m int, key string, rev int64, value []byte) (int64, bool, error) {
	r, err := s.clients[m].Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return 0, false, err
	}
	return r.Header.Revision, r.Succeeded, nil
}

func (s *etcdSystem) revision(ctx context.Context, m int) (int64, error) {
	r, err := s.clients[m].Get(ctx, "/bench")
	if err != nil {
		return 0, err
	}
	return r.Header.Revision, nil
}

func (s *etcdSystem) watch(ctx context.Context, m int, key string, after int64, fn func([]byte), fail func(error)) error {
	return s.watchOpts(ctx, m, key, after, fn, fail)
}

// watchOpts is watch with more options for the Watch call (WithPrefix).
func (s *etcdSystem) watchOpts(ctx context.Context, m int, key string, after int64, fn func([]byte), fail func(error), opts ...clientv3.OpOption) error {
	ch := s.clients[m].Watch(ctx, key, append([]clientv3.OpOption{clientv3.WithRev(after + 1), clientv3.WithCreatedNotify()}, opts...)...)
	first, ok := <-ch
	switch {
	case !ok:
		return fmt.Errorf("etcd watch on %q: channel closed before creation", key)
	case first.Err() != nil:
		return first.Err()
	case !first.Created:
		return fmt.Errorf("etcd watch on %q: first response is not the creation", key)
	}
	go func() {
		for resp := range ch {
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					fail(err)
				}
				return
			}
			for _, ev := range resp.Events {
				fn(ev.Kv.Value)
			}
		}
		if ctx.Err() == nil {
			fail(fmt.Errorf("etcd watch on %q closed early", key))
		}
	}()
	return nil
}

func (s *etcdSystem) grantKeepAlive(ctx context.Context, m int, ttl time.Duration) error {
	g, err := s.clients[m].Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return err
	}
	_, err = s.clients[m].KeepAliveOnce(ctx, g.ID)
	return err
}

// etcdMutex is a concurrency.Mutex in its own session.
type etcdMutex struct {
	s *concurrency.Session
	m *concurrency.Mutex
}

func (s *etcdSystem) newMutex(ctx context.Context, m int, name string) (mutex, error) {
	sess, err := concurrency.NewSession(s.clients[m])
	if err != nil {
		return nil, err
	}
	return &etcdMutex{s: sess, m: concurrency.NewMutex(sess, name)}, nil
}

func (m *etcdMutex) lock(ctx context.Context) error   { return m.m.Lock(ctx) }
func (m *etcdMutex) unlock(ctx context.Context) error { return m.m.Unlock(ctx) }
func (m *etcdMutex) close()                           { m.s.Close() }

// etcdCandidate is a concurrency.Election participant in its own session.
type etcdCandidate struct {
	s *concurrency.Session
	e *concurrency.Election
}

func (s *etcdSystem) newCandidate(ctx context.Context, m int, name string) (candidate, error) {
	sess, err := concurrency.NewSession(s.clients[m])
	if err != nil {
		return nil, err
	}
	return &etcdCandidate{s: sess, e: concurrency.NewElection(sess, name)}, nil
}

func (c *etcdCandidate) campaign(ctx context.Context) error { return c.e.Campaign(ctx, "leader") }
func (c *etcdCandidate) resign(ctx context.Context) error   { return c.e.Resign(ctx) }
func (c *etcdCandidate) close()                             { c.s.Close() }
