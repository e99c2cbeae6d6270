package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/registry"
)

// defaultServicesPrefix is where registrations live when a request names no
// prefix.
const defaultServicesPrefix = "/services"

type instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata"`
	Weight   int               `json:"weight"`
	Status   string            `json:"status"`
	Revision int64             `json:"revision"`
}

func toInstance(in registry.Instance) instance {
	md := in.Metadata
	if md == nil {
		md = map[string]string{}
	}
	return instance{Service: in.Service, ID: in.ID, Addr: in.Addr, Metadata: md, Weight: in.Weight,
		Status: string(in.Status), Revision: int64(in.Revision)}
}

func toInstances(ins []registry.Instance) []instance {
	out := make([]instance, 0, len(ins))
	for _, in := range ins {
		out = append(out, toInstance(in))
	}
	return out
}

func (a *api) registry(prefix string) *registry.Registry {
	if prefix == "" {
		prefix = defaultServicesPrefix
	}
	return registry.New(a.n, prefix)
}

type registerRequest struct {
	Prefix   string            `json:"prefix"`
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata"`
	Weight   int               `json:"weight"`
	Status   string            `json:"status"`
	TTLMs    int64             `json:"ttl_ms"`
	Check    *checkRequest     `json:"check"`
}

// checkRequest is a registry.Check the serving member runs for the
// registration.
type checkRequest struct {
	HTTP              string `json:"http"`
	TCP               string `json:"tcp"`
	IntervalMs        int64  `json:"interval_ms"`
	TimeoutMs         int64  `json:"timeout_ms"`
	DeregisterAfterMs int64  `json:"deregister_after_ms"`
}

// option is the check as a registry option.
func (c *checkRequest) option() (registry.RegisterOption, error) {
	if (c.HTTP == "") == (c.TCP == "") {
		return nil, fmt.Errorf("%w: a check needs exactly one of http and tcp", registry.ErrInvalid)
	}
	if c.HTTP != "" {
		if u, err := url.Parse(c.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%w: check http %q is not an http(s) URL", registry.ErrInvalid, c.HTTP)
		}
	}
	check := registry.Check{HTTP: c.HTTP, TCP: c.TCP}
	var err error
	for _, f := range []struct {
		name string
		ms   int64
		to   *time.Duration
	}{{"interval_ms", c.IntervalMs, &check.Interval}, {"timeout_ms", c.TimeoutMs, &check.Timeout},
		{"deregister_after_ms", c.DeregisterAfterMs, &check.DeregisterAfter}} {
		if *f.to, err = millis("check "+f.name, f.ms, 0); err != nil {
			return nil, err
		}
	}
	return registry.WithCheck(check), nil
}

type registeredLine struct {
	Registered instance `json:"registered"`
}

// register registers an instance on a session of its own and keeps it while
// the stream is open.
func (a *api) register(w http.ResponseWriter, r *http.Request, req *registerRequest) {
	ttl, err := millis("ttl_ms", req.TTLMs, defaultHeldTTL)
	if err == nil && req.Weight < 0 {
		err = fmt.Errorf("%w: weight %d is negative", registry.ErrInvalid, req.Weight)
	}
	opts := []registry.RegisterOption{registry.WithTTL(ttl)}
	if err == nil && req.Check != nil {
		var o registry.RegisterOption
		o, err = req.Check.option()
		opts = append(opts, o)
	}
	if err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	reg := a.registry(req.Prefix)
	in := registry.Instance{Service: req.Service, ID: req.ID, Addr: req.Addr, Metadata: req.Metadata,
		Weight: req.Weight, Status: registry.Status(req.Status)}
	g, err := reg.Register(ctx, in, opts...)
	if err != nil {
		writeCoordError(w, err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = g.Deregister(ctx) // on failure the session's TTL removes it
	}()
	first := registeredLine{Registered: toInstance(g.Instance())}
	// A Registration does not tell its revision; this member's replica has
	// it, since Register returns once the write is applied here.
	if ins, err := reg.Lookup(ctx, req.Service, registry.Local()); err == nil {
		for _, x := range ins {
			if x.ID == req.ID {
				first.Registered.Revision = int64(x.Revision)
			}
		}
	}
	st := a.newStream(w, r)
	defer st.stop()
	lost := func() error {
		return fmt.Errorf("%w: registration %s/%s ended with its session", errLost, req.Service, req.ID)
	}
	holdStream(ctx, st, first, g.Done(), lost, "")
}

type lookupRequest struct {
	Prefix      string `json:"prefix"`
	Service     string `json:"service"`
	PassingOnly bool   `json:"passing_only"`
	Local       bool   `json:"local"`
}

type lookupResponse struct {
	Instances []instance `json:"instances"`
}

func (a *api) lookup(ctx context.Context, req *lookupRequest) (any, error) {
	var opts []registry.LookupOption
	if req.PassingOnly {
		opts = append(opts, registry.PassingOnly())
	}
	if req.Local {
		opts = append(opts, registry.Local())
	}
	ins, err := a.registry(req.Prefix).Lookup(ctx, req.Service, opts...)
	if err != nil {
		return nil, err
	}
	return lookupResponse{Instances: toInstances(ins)}, nil
}

type servicesRequest struct {
	Prefix string `json:"prefix"`
}

type servicesResponse struct {
	Services []string `json:"services"`
}

func (a *api) services(ctx context.Context, req *servicesRequest) (any, error) {
	ss, err := a.registry(req.Prefix).Services(ctx)
	if err != nil {
		return nil, err
	}
	if ss == nil {
		ss = []string{}
	}
	return servicesResponse{Services: ss}, nil
}

type registryWatchRequest struct {
	Prefix       string `json:"prefix"`
	Service      string `json:"service"`
	FromRevision int64  `json:"from_revision"`
}

type registryEvent struct {
	Type     string    `json:"type"`
	Instance *instance `json:"instance"`
	Revision int64     `json:"revision"`
}

// registryWatch streams a service's instances: the current ones (added),
// synced, then every change.
func (a *api) registryWatch(w http.ResponseWriter, r *http.Request, req *registryWatchRequest) {
	var err error
	switch {
	case req.FromRevision < 0:
		err = fmt.Errorf("%w: from_revision %d is negative", coord.ErrInvalidOption, req.FromRevision)
	case req.Service == "" || strings.ContainsAny(req.Service, "/\x00"):
		// registry.Watch reports this on the channel, after the stream
		// has started; a malformed request deserves a 400.
		err = fmt.Errorf("%w: service %q must be non-empty, without '/'", registry.ErrInvalid, req.Service)
	}
	if err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var opts []registry.WatchOption
	if req.FromRevision > 0 {
		opts = append(opts, registry.FromRevision(coord.Revision(req.FromRevision)))
	}
	events := a.registry(req.Prefix).Watch(ctx, req.Service, opts...)
	st := a.newStream(w, r)
	defer st.stop()
	if st.start() != nil {
		return
	}
	pump(ctx, st, events, func(ev registry.Event) bool {
		if ev.Err != nil {
			st.fail(ev.Err)
			return false
		}
		line := registryEvent{Type: ev.Type.String(), Revision: int64(ev.Revision)}
		if ev.Type != registry.Synced {
			in := toInstance(ev.Instance)
			line.Instance = &in
		}
		return st.send(line) == nil
	})
}
