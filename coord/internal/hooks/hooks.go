// Package hooks lets coord's test harness reach into a coord.Config without
// widening the public API. Production code never sets these.
package hooks

import "github.com/lni/dragonboat/v4/config"

// SetTransport makes the Node opened with *cfg (a *coord.Config) use f for
// peer traffic instead of TCP. Set by package coord at init.
var SetTransport func(cfg any, f config.TransportFactory)
