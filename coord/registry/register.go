package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Check is a health check a registering process runs on itself.
type Check struct {
	// Exactly one of HTTP, TCP and Func.
	HTTP string                       // GET this URL: 2xx passing, 429 warning, anything else critical
	TCP  string                       // connect to host:port: passing if it connects
	Func func(context.Context) Status // any Go check
	// Interval between checks (default 10s) and Timeout of one (default 5s).
	Interval time.Duration
	Timeout  time.Duration
	// DeregisterAfter removes the registration once the check has been
	// critical this long (0: never).
	DeregisterAfter time.Duration
}

// RegisterOption configures Register.
type RegisterOption func(*registerConfig)

type registerConfig struct {
	ttl   time.Duration
	check *Check
}

// WithTTL sets the registration's session TTL: how long after the process
// dies the registration disappears. Default 10s.
func WithTTL(ttl time.Duration) RegisterOption { return func(c *registerConfig) { c.ttl = ttl } }

// WithCheck runs c in the background and publishes its status.
func WithCheck(c Check) RegisterOption { return func(rc *registerConfig) { rc.check = &c } }

// Registration is a live registration. Its methods are safe for concurrent
// use.
type Registration struct {
	r    *Registry
	s    *coord.Session
	key  string
	rev  coord.Revision // create revision: guards every update
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu   sync.Mutex
	inst Instance
	bad  time.Time // when the check turned critical
}

// Register publishes inst until Deregister, the end of its session, or
// (with a check and DeregisterAfter) a long enough critical spell. It
// returns once the registration is committed: a linearizable Lookup on any
// member then sees it. Errors: ErrInvalid, those of coord.NewSession and Put.
func (r *Registry) Register(ctx context.Context, inst Instance, opts ...RegisterOption) (*Registration, error) {
	if err := validName("service", inst.Service); err != nil {
		return nil, err
	}
	if err := validName("id", inst.ID); err != nil {
		return nil, err
	}
	if inst.Status == "" {
		inst.Status = Passing
	}
	if err := validStatus(inst.Status); err != nil {
		return nil, err
	}
	c := registerConfig{ttl: defaultTTL}
	for _, o := range opts {
		o(&c)
	}
	if c.check != nil {
		n := 0
		for _, set := range []bool{c.check.HTTP != "", c.check.TCP != "", c.check.Func != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("%w: a Check needs exactly one of HTTP, TCP and Func", ErrInvalid)
		}
	}
	s, err := r.n.NewSession(ctx, coord.WithTTL(c.ttl))
	if err != nil {
		return nil, err
	}
	reg := &Registration{r: r, s: s, key: r.serviceDir(inst.Service) + inst.ID, inst: inst}
	b, _ := json.Marshal(inst)
	tr, err := r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(reg.key), "=", 0)).
		Then(coord.OpPut(reg.key, b, coord.WithLease(s.Lease()))).Commit()
	if err == nil && !tr.Succeeded {
		err = fmt.Errorf("%w: %s/%s is registered already", ErrInvalid, inst.Service, inst.ID)
	}
	if err != nil {
		s.Close(context.Background())
		return nil, err
	}
	reg.rev = tr.Header.Revision
	if c.check != nil {
		cctx, cancel := context.WithCancel(context.Background())
		reg.stop = cancel
		reg.wg.Add(1)
		go reg.runCheck(cctx, *c.check)
	}
	return reg, nil
}

func validStatus(s Status) error {
	switch s {
	case Passing, Warning, Critical:
		return nil
	}
	return fmt.Errorf("%w: status %q", ErrInvalid, s)
}

// Instance returns the registration as last written.
func (g *Registration) Instance() Instance {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inst
}

// Done is closed when the registration's session ends.
func (g *Registration) Done() <-chan struct{} { return g.s.Done() }

// Update changes the registration in place (one revision: watchers see an
// update, not a removal and an addition). f edits a copy; Service and ID
// cannot change. Errors: ErrNotRegistered, ErrInvalid, those of Txn.
func (g *Registration) Update(ctx context.Context, f func(*Instance)) error {
	g.mu.Lock()
	next := g.inst
	next.Metadata = copyMap(g.inst.Metadata)
	f(&next)
	g.mu.Unlock()
	if next.Service != g.inst.Service || next.ID != g.inst.ID {
		return fmt.Errorf("%w: Update cannot change Service or ID", ErrInvalid)
	}
	if err := validStatus(next.Status); err != nil {
		return err
	}
	b, _ := json.Marshal(next)
	r, err := g.r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(g.key), "=", g.rev)).
		Then(coord.OpPut(g.key, b, coord.WithLease(g.s.Lease()))).Commit()
	if err != nil {
		if errors.Is(err, coord.ErrLeaseNotFound) {
			return ErrNotRegistered
		}
		return err
	}
	if !r.Succeeded {
		return ErrNotRegistered
	}
	g.mu.Lock()
	g.inst = next
	g.mu.Unlock()
	return nil
}

// SetStatus publishes a new health status (see Update).
func (g *Registration) SetStatus(ctx context.Context, s Status) error {
	return g.Update(ctx, func(in *Instance) { in.Status = s })
}

// Deregister removes the registration at once and ends its session and
// health check. It is idempotent.
func (g *Registration) Deregister(ctx context.Context) error {
	if g.stop != nil {
		g.stop()
	}
	g.wg.Wait()
	_, err := g.r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(g.key), "=", g.rev)).
		Then(coord.OpDelete(g.key)).Commit()
	cerr := g.s.Close(ctx)
	return errors.Join(err, cerr)
}

func (g *Registration) runCheck(ctx context.Context, c Check) {
	defer g.wg.Done()
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, c.Timeout)
		st := runOnce(cctx, c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		g.mu.Lock()
		changed := st != g.inst.Status
		if st == Critical && g.bad.IsZero() {
			g.bad = time.Now()
		} else if st != Critical {
			g.bad = time.Time{}
		}
		expired := c.DeregisterAfter > 0 && !g.bad.IsZero() && time.Since(g.bad) >= c.DeregisterAfter
		g.mu.Unlock()
		if expired {
			dctx, dcancel := context.WithTimeout(context.Background(), c.Timeout)
			g.r.n.Txn(dctx).If(coord.Compare(coord.CreateRevision(g.key), "=", g.rev)).Then(coord.OpDelete(g.key)).Commit()
			g.s.Close(dctx)
			dcancel()
			return
		}
		if changed {
			uctx, ucancel := context.WithTimeout(ctx, c.Timeout)
			if err := g.SetStatus(uctx, st); errors.Is(err, ErrNotRegistered) {
				ucancel()
				return
			}
			ucancel()
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		case <-g.s.Done():
			return
		}
	}
}

func runOnce(ctx context.Context, c Check) Status {
	switch {
	case c.Func != nil:
		st := c.Func(ctx)
		if validStatus(st) != nil {
			return Critical
		}
		return st
	case c.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return Critical
		}
		conn.Close()
		return Passing
	default:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTP, nil)
		if err != nil {
			return Critical
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return Critical
		}
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return Passing
		case resp.StatusCode == http.StatusTooManyRequests:
			return Warning
		}
		return Critical
	}
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
