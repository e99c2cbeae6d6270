package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Check is a health check a registering process runs on itself. A check
// that does not answer within Timeout is critical.
type Check struct {
	// Exactly one of HTTP, TCP and Func.
	HTTP string                       // GET this URL: 2xx passing, 429 warning, anything else critical
	TCP  string                       // connect to host:port: passing if it connects
	Func func(context.Context) Status // any Go check
	// HTTPClient makes the HTTP check's request: set one to trust a
	// private CA or to present a client certificate (mTLS). Default
	// http.DefaultClient.
	HTTPClient *http.Client
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
	ttl        time.Duration
	check      *Check
	keep       bool
	minBackoff time.Duration
	maxBackoff time.Duration
}

// WithTTL sets the registration's session TTL: how long after the process
// dies the registration disappears. Default 10s.
func WithTTL(ttl time.Duration) RegisterOption { return func(c *registerConfig) { c.ttl = ttl } }

// WithCheck runs c in the background and publishes its status.
func WithCheck(c Check) RegisterOption { return func(rc *registerConfig) { rc.check = &c } }

// KeepRegistered makes the registration outlive its session, like
// Curator's ServiceDiscovery: when the session is lost (a pause or a
// partition longer than its TTL, during which the cluster removed the
// registration), it opens a new session and registers again, with a
// backoff from min doubling up to max (defaults 100ms and 5s when 0),
// until Deregister or the Node closes. Events reports each loss and
// recovery.
func KeepRegistered(min, max time.Duration) RegisterOption {
	return func(c *registerConfig) {
		c.keep = true
		if min > 0 {
			c.minBackoff = min
		}
		if max > 0 {
			c.maxBackoff = max
		}
	}
}

// RegistrationEventType says what a RegistrationEvent reports.
type RegistrationEventType int

const (
	// Lost: the registration's session ended, and the cluster removes the
	// registration (Err says why).
	Lost RegistrationEventType = iota
	// Recovered: a KeepRegistered registration is registered again, under
	// a new session, at Revision.
	Recovered
)

// RegistrationEvent is one loss or recovery of a registration.
type RegistrationEvent struct {
	Type     RegistrationEventType
	Revision coord.Revision // Recovered: the revision of the new registration
	Err      error          // Lost: why the session ended; a failed attempt to register again
}

// Registration is a live registration. Its methods are safe for concurrent
// use.
type Registration struct {
	r      *Registry
	key    string
	cfg    registerConfig
	ctx    context.Context // ends with Deregister
	stop   context.CancelFunc
	wg     sync.WaitGroup
	events chan RegistrationEvent
	done   chan struct{}

	mu   sync.Mutex
	s    *coord.Session // the current session
	rev  coord.Revision // the current registration's create revision: guards every update
	inst Instance
	bad  time.Time // when the check turned critical
	err  error     // why the registration ended
}

// Register publishes inst until Deregister, the end of its session (with
// KeepRegistered: until Deregister or the Node closes), or (with a check
// and DeregisterAfter) a long enough critical spell. It returns once the
// registration is committed: a linearizable Lookup on any member then sees
// it. Errors: ErrInvalid, those of coord.NewSession and Put.
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
	c := registerConfig{ttl: defaultTTL, minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	if c.maxBackoff < c.minBackoff {
		return nil, fmt.Errorf("%w: KeepRegistered backoff from %v to %v", ErrInvalid, c.minBackoff, c.maxBackoff)
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
	reg := &Registration{r: r, key: r.serviceDir(inst.Service) + inst.ID, cfg: c, inst: inst,
		events: make(chan RegistrationEvent, 16), done: make(chan struct{})}
	s, rev, err := reg.register(ctx, 0)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		s.Close(context.Background())
		return nil, fmt.Errorf("%w: %s/%s is registered already", ErrInvalid, inst.Service, inst.ID)
	}
	reg.s, reg.rev = s, rev
	reg.ctx, reg.stop = context.WithCancel(context.Background())
	reg.wg.Add(1)
	go reg.supervise()
	if c.check != nil {
		reg.wg.Add(1)
		go reg.runCheck(reg.ctx, *c.check)
	}
	return reg, nil
}

// register opens a session and writes the registration with it: a new key,
// or, when old is not 0, the key this registration created at old, which
// a lost session may have left behind. rev is 0 when the key is another
// registration's.
func (g *Registration) register(ctx context.Context, old coord.Revision) (*coord.Session, coord.Revision, error) {
	s, err := g.r.n.NewSession(ctx, coord.WithTTL(g.cfg.ttl))
	if err != nil {
		return nil, 0, err
	}
	b, _ := json.Marshal(g.Instance())
	put := coord.OpPut(g.key, b, coord.WithLease(s.Lease()))
	tr, err := g.r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(g.key), "=", 0)).Then(put).Commit()
	rev := coord.Revision(0)
	if err == nil && tr.Succeeded {
		rev = tr.Header.Revision
	} else if err == nil && old != 0 {
		tr, err = g.r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(g.key), "=", old)).Then(put).Commit()
		if err == nil && tr.Succeeded {
			rev = old
		}
	}
	if err != nil {
		s.Close(context.Background())
		return nil, 0, err
	}
	return s, rev, nil
}

// supervise follows the registration's session: when it ends, the
// registration ends, or, with KeepRegistered, registers again.
func (g *Registration) supervise() {
	defer g.wg.Done()
	backoff := g.cfg.minBackoff
	for {
		g.mu.Lock()
		s := g.s
		g.mu.Unlock()
		select {
		case <-s.Done():
		case <-g.ctx.Done():
			return
		}
		err := s.Err()
		if g.ctx.Err() != nil {
			return
		}
		g.emit(RegistrationEvent{Type: Lost, Err: err})
		if !g.cfg.keep || errors.Is(err, coord.ErrClosed) {
			g.end(err)
			return
		}
		for {
			t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			select {
			case <-t.C:
			case <-g.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, g.cfg.maxBackoff)
			g.mu.Lock()
			old := g.rev
			g.mu.Unlock()
			ns, rev, err := g.register(g.ctx, old)
			if err == nil && rev == 0 {
				ns.Close(context.Background())
				err = fmt.Errorf("%w: %s is registered by another session", ErrInvalid, g.key)
			}
			if errors.Is(err, coord.ErrClosed) {
				g.end(err)
				return
			}
			if err != nil {
				if g.ctx.Err() != nil {
					return
				}
				g.emit(RegistrationEvent{Type: Lost, Err: err})
				continue
			}
			g.mu.Lock()
			g.s, g.rev = ns, rev
			g.mu.Unlock()
			if g.ctx.Err() != nil { // Deregister came first: it reads g.s once we return
				return
			}
			backoff = g.cfg.minBackoff
			g.emit(RegistrationEvent{Type: Recovered, Revision: rev})
			break
		}
	}
}

// emit sends ev on Events, or drops it when the reader is 16 behind or
// the registration has ended.
func (g *Registration) emit(ev RegistrationEvent) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return
	}
	select {
	case g.events <- ev:
	default:
	}
}

// end ends the registration for good, with err.
func (g *Registration) end(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
		g.stop()
		close(g.done)
		close(g.events)
	}
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

// Done is closed when the registration ends: Deregister, the end of its
// session (with KeepRegistered: the Node closed), or DeregisterAfter.
// Err then says why.
func (g *Registration) Done() <-chan struct{} { return g.done }

// Err returns nil while the registration lasts, then why it ended:
// ErrNotRegistered after Deregister or DeregisterAfter, the session's
// error (coord.ErrSessionExpired, coord.ErrClosed) when it was lost.
func (g *Registration) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Events delivers each loss of the registration (Lost) and, with
// KeepRegistered, each recovery (Recovered), in order. An event is dropped
// when the reader is 16 behind. The channel closes when Done does.
func (g *Registration) Events() <-chan RegistrationEvent { return g.events }

// current is the registration's session and create revision.
func (g *Registration) current() (*coord.Session, coord.Revision) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.s, g.rev
}

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
	s, rev := g.current()
	r, err := g.r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(g.key), "=", rev)).
		Then(coord.OpPut(g.key, b, coord.WithLease(s.Lease()))).Commit()
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
// health check; Err then returns ErrNotRegistered. It is idempotent.
func (g *Registration) Deregister(ctx context.Context) error {
	g.stop()
	g.wg.Wait()
	defer g.end(ErrNotRegistered)
	return g.remove(ctx)
}

// remove deletes the registration's key, if it is still this
// registration's, and closes its session.
func (g *Registration) remove(ctx context.Context) error {
	s, rev := g.current()
	_, err := g.r.n.Txn(ctx).If(coord.Compare(coord.CreateRevision(g.key), "=", rev)).
		Then(coord.OpDelete(g.key)).Commit()
	return errors.Join(err, s.Close(ctx))
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
			g.stop() // first: the supervisor must not register again
			dctx, dcancel := context.WithTimeout(context.Background(), c.Timeout)
			g.remove(dctx)
			dcancel()
			g.end(ErrNotRegistered)
			return
		}
		if changed {
			uctx, ucancel := context.WithTimeout(ctx, c.Timeout)
			err := g.SetStatus(uctx, st)
			ucancel()
			if errors.Is(err, ErrNotRegistered) && !g.cfg.keep {
				return
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		case <-g.done:
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
		client := c.HTTPClient
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
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
