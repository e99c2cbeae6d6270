package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/lock"
)

// externalStore is a resource outside coordkit guarded by a lock. Holders
// write "begin" and "end" around their critical section; the store counts
// an overlap when a critical section it accepted is interleaved with
// another's. With fenced=true it refuses tokens older than the newest seen.
type externalStore struct {
	fenced bool

	mu       sync.Mutex
	highest  coord.Revision
	open     map[string]coord.Revision // holders inside an accepted critical section, by token
	overlaps int
	begins   int
	refused  int
}

func (s *externalStore) write(holder string, token coord.Revision, begin bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced && token < s.highest {
		s.refused++
		return false
	}
	s.highest = max(s.highest, token)
	if s.fenced {
		// Sections with older tokens are fenced out: the store will refuse
		// every further write of theirs.
		for h, t := range s.open {
			if t < token {
				delete(s.open, h)
			}
		}
	}
	if begin {
		s.begins++
		if len(s.open) > 0 {
			s.overlaps++
		}
		s.open[holder] = token
	} else {
		if _, in := s.open[holder]; in && len(s.open) > 1 {
			s.overlaps++
		}
		delete(s.open, holder)
	}
	return true
}

func (s *externalStore) beginsSoFar() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.begins
}

// runLockHolders has holders on every member take a lock in turn; some are
// "paused" in their critical section for longer than their session lives
// (their lease is revoked, as its expiry would during a process pause),
// while the next holder takes the lock and writes.
func runLockHolders(t *testing.T, fenced bool, seed int64) *externalStore {
	c := coordtest.New(t, 3)
	store := &externalStore{fenced: fenced, open: map[string]coord.Revision{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const holders, rounds = 4, 6
	var wg sync.WaitGroup
	for h := 0; h < holders; h++ {
		wg.Add(1)
		go func(h int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(h)))
			n := c.Node(h % 3)
			name := fmt.Sprint("holder", h)
			for r := 0; r < rounds && ctx.Err() == nil; r++ {
				s, err := n.NewSession(ctx, coord.WithTTL(2*coordtest.ElectionTimeout))
				if err != nil {
					t.Error(err)
					return
				}
				m := lock.NewMutex(s, "/fenced/lock")
				if err := m.Lock(ctx); err != nil {
					s.Close(context.Background())
					if errors.Is(err, coord.ErrSessionExpired) {
						continue
					}
					t.Error(err)
					return
				}
				token := m.Fence()
				if !store.write(name, token, true) {
					t.Errorf("%s: a fresh holder's write was refused (token %d): tokens out of order", name, token)
				}
				paused := rng.Intn(2) == 0
				if paused {
					// The pause: this holder's session ends while it sleeps,
					// and it wakes up only after someone else began writing.
					seen := store.beginsSoFar()
					if err := c.Node((h+1)%3).Revoke(ctx, s.Lease()); err != nil && !errors.Is(err, coord.ErrLeaseNotFound) {
						t.Error(err)
					}
					deadline := time.Now().Add(10 * time.Second)
					for store.beginsSoFar() == seen && time.Now().Before(deadline) {
						time.Sleep(10 * time.Millisecond) // the paused holder polls nothing; this only paces the test
					}
				}
				if !store.write(name, token, false) && !paused {
					t.Errorf("%s: a holder that was never paused was refused (token %d)", name, token)
				}
				_ = m.Unlock(ctx)
				s.Close(context.Background())
			}
		}(h)
	}
	wg.Wait()
	return store
}

func TestLockSafetyNeedsFencing(t *testing.T) {
	fenced := runLockHolders(t, true, 31)
	t.Logf("fenced: %d critical sections, %d stale writes refused, %d overlaps", fenced.begins, fenced.refused, fenced.overlaps)
	if fenced.overlaps != 0 {
		t.Fatalf("with fencing checked, %d critical sections overlapped", fenced.overlaps)
	}
	if fenced.refused == 0 {
		t.Fatal("no stale holder was ever refused: the pauses did not happen")
	}
	unfenced := runLockHolders(t, false, 31)
	t.Logf("unfenced: %d critical sections, %d overlaps", unfenced.begins, unfenced.overlaps)
	if unfenced.overlaps == 0 {
		t.Fatal("without fencing no overlap showed: the scenario does not exercise paused holders")
	}
}
