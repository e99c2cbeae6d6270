package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coordkit/coordkit/coord/pubsub"
	"github.com/coordkit/coordkit/coord/registry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
)

// serviceSystem is a system with service discovery and publish/subscribe:
// coordkit's coord/registry and coord/pubsub; on etcd, its naming/endpoints
// manager in a session of its own per registration, and, since etcd has no
// pub/sub, a Put of a new key under the topic delivered by a watch of the
// topic's prefix (what a pub/sub on etcd is built from).
type serviceSystem interface {
	system
	// register registers instance id of service through member, in a
	// session (lease, kept alive) of its own, and returns what deregisters
	// it and ends the session.
	register(ctx context.Context, member int, service, id, addr string) (func(context.Context) error, error)
	// lookup lists service's instances, linearizably, and returns how many.
	lookup(ctx context.Context, member int, service string) (int, error)
	// publish publishes payload on topic through member.
	publish(ctx context.Context, member int, topic string, payload []byte) error
	// subscribe delivers to fn, on one goroutine, the payload of every
	// message published on topic after subscribe returns, in order, until
	// ctx ends; a subscription that ends early calls fail.
	subscribe(ctx context.Context, member int, topic string, fn func([]byte), fail func(error)) error
}

var (
	_ serviceSystem = (*coordkitSystem)(nil)
	_ serviceSystem = (*etcdSystem)(nil)
)

const (
	registryPrefix = "/bench/registry/"
	pubsubPrefix   = "/bench/pubsub/"
	registryTTL    = 10 * time.Second // coord/registry's default
)

func (s *coordkitSystem) register(ctx context.Context, m int, service, id, addr string) (func(context.Context) error, error) {
	g, err := registry.New(s.nodes[m], registryPrefix).Register(ctx, registry.Instance{Service: service, ID: id, Addr: addr},
		registry.WithTTL(registryTTL))
	if err != nil {
		return nil, err
	}
	return g.Deregister, nil
}

func (s *coordkitSystem) lookup(ctx context.Context, m int, service string) (int, error) {
	insts, err := registry.New(s.nodes[m], registryPrefix).Lookup(ctx, service)
	return len(insts), err
}

func (s *coordkitSystem) publish(ctx context.Context, m int, topic string, payload []byte) error {
	_, err := pubsub.New(s.nodes[m], pubsubPrefix).Publish(ctx, topic, payload)
	return err
}

func (s *coordkitSystem) subscribe(ctx context.Context, m int, topic string, fn func([]byte), fail func(error)) error {
	ch := pubsub.New(s.nodes[m], pubsubPrefix).Subscribe(ctx, topic)
	// Subscribe resolves its start before returning: an error then arrives
	// at once, and later publishes are delivered.
	select {
	case d, ok := <-ch:
		if !ok {
			return fmt.Errorf("coordkit subscription to %q closed before any message", topic)
		}
		if d.Err != nil {
			return d.Err
		}
		return fmt.Errorf("coordkit subscription to %q: a message before any was published", topic)
	default:
	}
	go func() {
		for d := range ch {
			if d.Err != nil {
				if ctx.Err() == nil {
					fail(d.Err)
				}
				return
			}
			fn(d.Payload)
		}
		if ctx.Err() == nil {
			fail(fmt.Errorf("coordkit subscription to %q closed early", topic))
		}
	}()
	return nil
}

func (s *etcdSystem) register(ctx context.Context, m int, service, id, addr string) (func(context.Context) error, error) {
	c := s.clients[m]
	em, err := endpoints.NewManager(c, registryPrefix+service)
	if err != nil {
		return nil, err
	}
	sess, err := concurrency.NewSession(c, concurrency.WithTTL(int(registryTTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	key := registryPrefix + service + "/" + id
	if err := em.AddEndpoint(ctx, key, endpoints.Endpoint{Addr: addr}, clientv3.WithLease(sess.Lease())); err != nil {
		sess.Close()
		return nil, err
	}
	return func(ctx context.Context) error {
		err := em.DeleteEndpoint(ctx, key)
		return errors.Join(err, sess.Close())
	}, nil
}

func (s *etcdSystem) lookup(ctx context.Context, m int, service string) (int, error) {
	em, err := endpoints.NewManager(s.clients[m], registryPrefix+service)
	if err != nil {
		return 0, err
	}
	eps, err := em.List(ctx)
	return len(eps), err
}

// etcdMessages numbers the keys etcd's publishes create, unique in the run.
var etcdMessages atomic.Int64

func (s *etcdSystem) publish(ctx context.Context, m int, topic string, payload []byte) error {
	key := pubsubPrefix + topic + "/" + strconv.FormatInt(etcdMessages.Add(1), 10)
	_, err := s.clients[m].Put(ctx, key, string(payload))
	return err
}

func (s *etcdSystem) subscribe(ctx context.Context, m int, topic string, fn func([]byte), fail func(error)) error {
	at, err := s.revision(ctx, m)
	if err != nil {
		return err
	}
	return s.watchOpts(ctx, m, pubsubPrefix+topic+"/", at, fn, fail, clientv3.WithPrefix())
}

// registryLoad: clients register an instance of one service (a new ID each
// time, in a session of its own) and deregister it. One op is a
// registration and its deregistration.
func registryLoad(p params, s system) figure {
	ss, ok := s.(serviceSystem)
	if !ok {
		return figure{na: "n/a (no registry)"}
	}
	n := s.members()
	return figure{result: drive(64, p.duration, func(ctx context.Context, c, i int) error {
		dereg, err := ss.register(ctx, c%n, "api", strconv.Itoa(c)+"-"+strconv.Itoa(i), "10.0.0.1:80")
		if err != nil {
			return err
		}
		// Deregister even when the run's context ended.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return dereg(dctx)
	})}
}

// lookupLoad registers 16 instances of one service, then clients look the
// service up, linearizably.
func lookupLoad(p params, s system) figure {
	ss, ok := s.(serviceSystem)
	if !ok {
		return figure{na: "n/a (no registry)"}
	}
	const instances = 16
	n := s.members()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var deregs []func(context.Context) error
	defer func() {
		for _, d := range deregs {
			d(ctx)
		}
	}()
	for i := range instances {
		d, err := ss.register(ctx, i%n, "web", "w"+strconv.Itoa(i), "10.0.1."+strconv.Itoa(i)+":80")
		if err != nil {
			return figure{err: fmt.Errorf("registering instance %d: %w", i, err)}
		}
		deregs = append(deregs, d)
	}
	return figure{result: drive(64, p.duration, func(ctx context.Context, c, i int) error {
		got, err := ss.lookup(ctx, c%n, "web")
		if err == nil && got != instances {
			err = fmt.Errorf("lookup found %d instances, want %d", got, instances)
		}
		return err
	})}
}

// publishLoad: 64 clients publish 16-byte messages on one topic.
func publishLoad(p params, s system) figure {
	ss, ok := s.(serviceSystem)
	if !ok {
		return figure{na: "n/a (no pub/sub)"}
	}
	n := s.members()
	payload := []byte(strings.Repeat("m", 16))
	return figure{result: drive(64, p.duration, func(ctx context.Context, c, i int) error {
		return ss.publish(ctx, c%n, "orders", payload)
	})}
}

// pubsubAsWatch lets watchLoad measure publish-to-delivery latency: a put
// publishes the value on a topic, and a watch subscribes to it.
type pubsubAsWatch struct{ serviceSystem }

const deliverTopic = "deliver"

// revision is 0: a subscription starts when subscribe returns, not at a
// revision.
func (w pubsubAsWatch) revision(context.Context, int) (int64, error) { return 0, nil }

func (w pubsubAsWatch) put(ctx context.Context, m int, _ string, value []byte) error {
	return w.publish(ctx, m, deliverTopic, value)
}

func (w pubsubAsWatch) watch(ctx context.Context, m int, _ string, _ int64, fn func([]byte), fail func(error)) error {
	return w.subscribe(ctx, m, deliverTopic, fn, fail)
}

// deliverLoad is watch-1 over pub/sub: publish on member 0, delivery to a
// subscriber on member 1.
func deliverLoad(p params, s system) figure {
	ss, ok := s.(serviceSystem)
	if !ok {
		return figure{na: "n/a (no pub/sub)"}
	}
	return watchLoad(p, pubsubAsWatch{ss}, 1)
}
