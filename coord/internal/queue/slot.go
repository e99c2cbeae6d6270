package queue

import (
	"context"
	"errors"
	"sync"

	"github.com/coordkit/coordkit/coord"
)

// Slot is the bookkeeping every lock or election value shares: at most one
// acquisition at a time, acquiring or held; a hold that was lost frees the
// slot for the next acquisition. Its methods are safe for concurrent use.
// The zero value is not usable: set E and Busy.
type Slot struct {
	// E are the primitive's errors; Busy is returned by Acquire while the
	// slot is acquiring or holding.
	E    *Errors
	Busy error

	mu        sync.Mutex
	acquiring bool
	current   *Hold // held now, or lost and not released yet
	last      *Hold // the latest hold, current or ended by Release
}

// Acquire runs f unless the slot is acquiring or holds a hold that lasts
// (Busy), and records its hold.
func (s *Slot) Acquire(f func() (*Hold, error)) error {
	s.mu.Lock()
	if s.acquiring || s.current != nil && !s.current.ended() {
		s.mu.Unlock()
		return s.Busy
	}
	s.acquiring = true
	s.mu.Unlock()
	h, err := f()
	s.mu.Lock()
	s.acquiring = false
	if h != nil {
		s.current, s.last = h, h
	}
	s.mu.Unlock()
	return err
}

// Held returns the current hold, or nil.
func (s *Slot) Held() *Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Last returns the latest hold, current or released; nil before the first.
func (s *Slot) Last() *Hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Release ends the current hold (see Hold.Release); the slot is free again
// afterwards unless the release failed for another reason than not holding.
// E.NotHeld when there is no hold.
func (s *Slot) Release(ctx context.Context) error {
	h := s.Held()
	if h == nil {
		return s.E.NotHeld
	}
	err := h.Release(ctx)
	if err == nil || errors.Is(err, s.E.NotHeld) {
		s.mu.Lock()
		if s.current == h {
			s.current = nil
		}
		s.mu.Unlock()
	}
	return err
}

// Fence is the current hold's fencing token, 0 when there is none.
func (s *Slot) Fence() coord.Revision {
	if h := s.Held(); h != nil {
		return h.rev
	}
	return 0
}

// Owner is the current hold's Owner compare, or one that never holds
// (NotHeld(dir)) when there is none.
func (s *Slot) Owner(dir string) coord.Cmp {
	if h := s.Held(); h != nil {
		return h.Owner()
	}
	return NotHeld(dir)
}

// Done is the current hold's Done channel, nil when there is none.
func (s *Slot) Done() <-chan struct{} {
	if h := s.Held(); h != nil {
		return h.done
	}
	return nil
}
