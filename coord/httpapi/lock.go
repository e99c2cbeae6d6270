package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/lock"
)

type lockAcquireRequest struct {
	Name   string `json:"name"`
	TTLMs  int64  `json:"ttl_ms"`
	WaitMs int64  `json:"wait_ms"`
	Try    bool   `json:"try"`
}

type lockLine struct {
	Lock lockInfo `json:"lock"`
}

type lockInfo struct {
	Name  string `json:"name"`
	Key   []byte `json:"key"`
	Fence int64  `json:"fence"`
	Lease int64  `json:"lease"`
}

type leaseRequest struct {
	Lease int64 `json:"lease"`
}

// lockAcquire takes a lock on a session of its own and holds it while the
// stream is open. Until the lock is taken nothing is sent, so that a refusal
// (409 locked, a timeout) is an ordinary error response.
func (a *api) lockAcquire(w http.ResponseWriter, r *http.Request, req *lockAcquireRequest) {
	ttl, wait, err := req.check()
	if err != nil {
		writeCoordError(w, err)
		return
	}
	ctx, end := context.WithCancelCause(r.Context())
	defer end(nil)
	s, err := a.n.NewSession(ctx, coord.WithTTL(ttl))
	if err != nil {
		writeCoordError(w, err)
		return
	}
	m := lock.NewMutex(s, req.Name)
	h := &holding{kind: kindLock, lease: s.Lease(), release: m.Unlock, end: end}
	defer a.closeHeld(h, s)

	switch {
	case req.Try:
		err = m.TryLock(ctx)
	case wait > 0:
		err = lockWithin(ctx, m, wait)
	default:
		err = m.Lock(ctx)
	}
	if err != nil {
		writeCoordError(w, err)
		return
	}
	done := m.Done()
	a.addHolding(h)
	st := a.newStream(w, r)
	defer st.stop()
	first := lockLine{Lock: lockInfo{Name: req.Name, Key: []byte(m.Key()), Fence: int64(m.Fence()), Lease: int64(s.Lease())}}
	holdStream(ctx, st, first, done, m.Err, "the lock was released through /v1/lock/release")
}

// lockWithin waits at most wait for the lock; errWaitExpired when it runs
// out.
func lockWithin(ctx context.Context, m *lock.Mutex, wait time.Duration) error {
	lctx, cancel := context.WithTimeoutCause(ctx, wait, errWaitExpired)
	defer cancel()
	err := m.Lock(lctx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(lctx), errWaitExpired) {
		return fmt.Errorf("%w: after waiting %v", errWaitExpired, wait)
	}
	return err
}

func (req *lockAcquireRequest) check() (ttl, wait time.Duration, err error) {
	if err := checkName("name", req.Name); err != nil {
		return 0, 0, err
	}
	if ttl, err = millis("ttl_ms", req.TTLMs, defaultHeldTTL); err != nil {
		return 0, 0, err
	}
	if wait, err = millis("wait_ms", req.WaitMs, 0); err != nil {
		return 0, 0, err
	}
	if req.Try && wait > 0 {
		return 0, 0, fmt.Errorf("%w: try and wait_ms are exclusive", coord.ErrInvalidOption)
	}
	return ttl, wait, nil
}

func (a *api) lockRelease(ctx context.Context, req *leaseRequest) (any, error) {
	return a.releaseHeld(ctx, req.Lease, kindLock)
}
