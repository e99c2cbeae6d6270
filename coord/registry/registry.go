// Package registry is service registration and discovery on coordkit, built
// on coord's public API only.
//
// A service instance registers itself under prefix/service/id, attached to a
// session: the registration disappears within the session's TTL when the
// process dies, and at once on Deregister or when the process closes its
// Node. With KeepRegistered, a registration outlives its session: when a
// pause or a partition longer than the TTL loses it, the instance registers
// again by itself, and Events reports the loss and the recovery. A
// registration may run a health check and publish its status
// (passing, warning, critical); discovery can ask for passing instances
// only. Watch streams a service's instances, the current set first, then
// every change with no gap; a Resolver keeps a local copy current and picks
// instances round-robin, at random, by weight, or sticky by key.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// Status is an instance's health.
type Status string

// Health states, as Consul names them.
const (
	Passing  Status = "passing"
	Warning  Status = "warning"
	Critical Status = "critical"
)

// Instance is one registered instance of a service.
type Instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Weight steers the weighted picker; 0 counts as 1.
	Weight int `json:"weight,omitempty"`
	// Status defaults to Passing.
	Status Status `json:"status,omitempty"`
	// Revision is the revision of the registration's last change (set on
	// lookups and events, ignored on Register).
	Revision coord.Revision `json:"-"`
}

// Errors. Match them with errors.Is.
var (
	// ErrInvalid: an Instance with an empty or malformed service or ID, or a
	// bad option.
	ErrInvalid = errors.New("registry: invalid instance")
	// ErrNotRegistered: the registration is gone (deregistered, or its
	// session ended).
	ErrNotRegistered = errors.New("registry: not registered")
	// ErrNoInstance: a picker found no usable instance.
	ErrNoInstance = errors.New("registry: no instance available")
)

// Registry registers and discovers services under a key prefix. It is safe
// for concurrent use and holds no state of its own.
type Registry struct {
	n      *coord.Node
	prefix string
}

// New returns a Registry keeping its records under prefix (a directory,
// for example "/services"). It does no I/O.
func New(n *coord.Node, prefix string) *Registry {
	return &Registry{n: n, prefix: strings.TrimSuffix(prefix, "/") + "/"}
}

func (r *Registry) serviceDir(service string) string { return r.prefix + service + "/" }

func validName(kind, s string) error {
	if s == "" || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%w: %s %q must be non-empty, without '/'", ErrInvalid, kind, s)
	}
	return nil
}

func decode(kv *coord.KeyValue) (Instance, error) {
	var in Instance
	if err := json.Unmarshal(kv.Value, &in); err != nil {
		return in, fmt.Errorf("registry: record %s: %w", kv.Key, err)
	}
	if in.Status == "" {
		in.Status = Passing
	}
	in.Revision = kv.ModRevision
	return in, nil
}

// LookupOption shapes Lookup and NewResolver.
type LookupOption func(*lookup)

type lookup struct {
	passing, local bool
	filters        []func(Instance) bool
}

// keep reports whether in passes the filters (not the status).
func (l *lookup) keep(in Instance) bool {
	for _, f := range l.filters {
		if !f(in) {
			return false
		}
	}
	return true
}

// PassingOnly keeps only instances whose status is Passing. (A Resolver
// picks only those anyway.)
func PassingOnly() LookupOption { return func(l *lookup) { l.passing = true } }

// Local reads this member's replica (serializable): no network, possibly
// slightly behind. (A Resolver always follows this member's replica.)
func Local() LookupOption { return func(l *lookup) { l.local = true } }

// WithMetadata keeps only instances whose Metadata[key] is value, for
// example ("zone", "eu-1") or ("version", "2"). Several filters must all
// hold.
func WithMetadata(key, value string) LookupOption {
	return Matching(func(in Instance) bool { v, ok := in.Metadata[key]; return ok && v == value })
}

// Matching keeps only instances for which f returns true. f must be quick
// and must not block: a Resolver calls it for every change it follows.
func Matching(f func(Instance) bool) LookupOption {
	return func(l *lookup) { l.filters = append(l.filters, f) }
}

// Lookup returns a service's instances, ordered by ID. Linearizable by
// default: after Register returns anywhere, Lookup on any member sees the
// instance. Errors: those of coord's Get.
func (r *Registry) Lookup(ctx context.Context, service string, opts ...LookupOption) ([]Instance, error) {
	if err := validName("service", service); err != nil {
		return nil, err
	}
	var l lookup
	for _, o := range opts {
		o(&l)
	}
	getOpts := []coord.OpOption{coord.WithPrefix()}
	if l.local {
		getOpts = append(getOpts, coord.WithSerializable())
	}
	g, err := r.n.Get(ctx, r.serviceDir(service), getOpts...)
	if err != nil {
		return nil, err
	}
	var out []Instance
	for _, kv := range g.KVs {
		in, err := decode(kv)
		if err != nil {
			continue // not ours; skip rather than fail discovery
		}
		if l.passing && in.Status != Passing || !l.keep(in) {
			continue
		}
		out = append(out, in)
	}
	return out, nil
}

// Services lists the services with at least one instance, sorted.
func (r *Registry) Services(ctx context.Context) ([]string, error) {
	l, err := r.n.List(ctx, r.prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range l.Entries {
		if e.Dir {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(e.Name, r.prefix), "/"))
		}
	}
	sort.Strings(out)
	return out, nil
}

// defaultTTL is a registration's session TTL when WithTTL is not given.
const defaultTTL = 10 * time.Second
