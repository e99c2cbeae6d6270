package lock

import (
	"context"
	"errors"
	"sync"

	"github.com/coordkit/coordkit/coord"
)

// slot is the bookkeeping every lock value shares: at most one acquisition
// at a time, acquiring or held.
type slot struct {
	mu      sync.Mutex
	busy    bool // acquiring or held
	current *hold
}

// acquireWith runs f unless the slot is busy, and records its hold.
func (s *slot) acquireWith(f func() (*hold, error)) error {
	s.mu.Lock()
	if s.busy {
		s.mu.Unlock()
		return ErrAlreadyHeld
	}
	s.busy = true
	s.mu.Unlock()
	h, err := f()
	s.mu.Lock()
	s.current, s.busy = h, h != nil
	s.mu.Unlock()
	return err
}

func (s *slot) held() *hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// release ends the current hold (see hold.release); the slot is free again
// afterwards unless the release failed for another reason than not holding.
func (s *slot) release(ctx context.Context) error {
	h := s.held()
	if h == nil {
		return ErrNotHeld
	}
	err := h.release(ctx)
	if err == nil || errors.Is(err, ErrNotHeld) {
		s.mu.Lock()
		s.current, s.busy = nil, false
		s.mu.Unlock()
	}
	return err
}

func (s *slot) fence() coord.Revision {
	if h := s.held(); h != nil {
		return h.rev
	}
	return 0
}

func (s *slot) owner(dir string) coord.Cmp {
	if h := s.held(); h != nil {
		return h.owner()
	}
	return notHeld(dir)
}

func (s *slot) done() <-chan struct{} {
	if h := s.held(); h != nil {
		return h.done
	}
	return nil
}
