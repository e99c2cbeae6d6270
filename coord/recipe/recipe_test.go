package recipe_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/recipe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ctxT(t *testing.T) context.Context { return coordtest.Context(t, time.Minute) }

// TestSTMTransfersKeepTheTotal: concurrent transfers between accounts, from
// every member, each read-modify-write of two keys in an STM; conflicts
// are retried, and the total never changes.
func TestSTMTransfersKeepTheTotal(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const accounts, each = 5, 100
	key := func(i int) string { return fmt.Sprintf("/bank/acct%d", i) }
	for i := range accounts {
		if _, err := c.Node(0).Put(ctx, key(i), []byte(strconv.Itoa(each))); err != nil {
			t.Fatal(err)
		}
	}
	var runs, commits atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		n := c.Node(w % 3)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				from, to := (w+i)%accounts, (w+2*i+1)%accounts
				if from == to {
					continue
				}
				_, err := recipe.STM(ctx, n, func(tx *recipe.Tx) error {
					runs.Add(1)
					a, err := tx.Get(key(from))
					if err != nil {
						return err
					}
					b, err := tx.Get(key(to))
					if err != nil {
						return err
					}
					av, _ := strconv.Atoi(string(a))
					bv, _ := strconv.Atoi(string(b))
					amount := min(av, 7)
					tx.Put(key(from), []byte(strconv.Itoa(av-amount)))
					tx.Put(key(to), []byte(strconv.Itoa(bv+amount)))
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				commits.Add(1)
			}
		}()
	}
	wg.Wait()
	total := 0
	for i := range accounts {
		g, err := c.Node(1).Get(ctx, key(i))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := strconv.Atoi(string(g.KVs[0].Value))
		if v < 0 {
			t.Fatalf("account %d went negative: %d", i, v)
		}
		total += v
	}
	if total != accounts*each {
		t.Fatalf("total %d after transfers, want %d", total, accounts*each)
	}
	t.Logf("%d transfers committed in %d runs (the difference: conflicts retried)", commits.Load(), runs.Load())
	if runs.Load() <= commits.Load() {
		t.Log("no conflict happened in this run")
	}
}

// TestSTMConflictAbortAndShards: a read key changed before the commit makes
// the function run again (and, with no retries left, ErrTooManyConflicts);
// the function's error aborts with nothing written; keys in two shards are
// refused.
func TestSTMConflictAbortAndShards(t *testing.T) {
	c := coordtest.New(t, 1, coordtest.WithShards(4))
	ctx := ctxT(t)
	n := c.Node(0)
	n.Put(ctx, "/stm/x", []byte("1"))
	runs := 0
	_, err := recipe.STM(ctx, n, func(tx *recipe.Tx) error {
		runs++
		if _, err := tx.Get("/stm/x"); err != nil {
			return err
		}
		if runs == 1 {
			n.Put(ctx, "/stm/x", []byte("changed")) // another writer, between read and commit
		}
		tx.Put("/stm/y", []byte("from the STM"))
		return nil
	})
	if err != nil || runs != 2 {
		t.Fatalf("STM after a conflict: %v, %d runs (want 2)", err, runs)
	}
	_, err = recipe.STM(ctx, n, func(tx *recipe.Tx) error {
		tx.Get("/stm/x")
		n.Put(ctx, "/stm/x", []byte("again"))
		return nil
	}, recipe.WithRetries(0))
	if !errors.Is(err, recipe.ErrTooManyConflicts) {
		t.Fatalf("no retries left: %v", err)
	}
	boom := errors.New("boom")
	_, err = recipe.STM(ctx, n, func(tx *recipe.Tx) error {
		tx.Put("/stm/z", []byte("never"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("aborted STM: %v", err)
	}
	if g, _ := n.Get(ctx, "/stm/z"); len(g.KVs) != 0 {
		t.Fatal("an aborted STM wrote")
	}
	var other string
	for i := 0; other == ""; i++ {
		if k := fmt.Sprintf("/o%d/k", i); n.ShardOf(k) != n.ShardOf("/stm/x") {
			other = k
		}
	}
	_, err = recipe.STM(ctx, n, func(tx *recipe.Tx) error {
		tx.Get("/stm/x")
		tx.Put(other, []byte("v"))
		return nil
	})
	if !errors.Is(err, coord.ErrCrossShard) {
		t.Fatalf("STM over two shards: %v", err)
	}
}

func TestCounter(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for w := range 6 {
		cn := recipe.NewCounter(c.Node(w%3), "/counters/hits")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := cn.Add(ctx, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cn := recipe.NewCounter(c.Node(2), "/counters/hits")
	if v, err := cn.Get(ctx); err != nil || v != 120 {
		t.Fatalf("after 120 concurrent adds: %d %v", v, err)
	}
	if ok, err := cn.CompareAndSet(ctx, 119, 0); err != nil || ok {
		t.Fatalf("CompareAndSet from a wrong value: %v %v", ok, err)
	}
	if ok, err := cn.CompareAndSet(ctx, 120, -5); err != nil || !ok {
		t.Fatalf("CompareAndSet: %v %v", ok, err)
	}
	if v, _ := cn.Add(ctx, 10); v != 5 {
		t.Fatalf("Add after CompareAndSet: %d", v)
	}
	c.Node(0).Put(ctx, "/counters/bad", []byte("seven"))
	if _, err := recipe.NewCounter(c.Node(0), "/counters/bad").Add(ctx, 1); !errors.Is(err, recipe.ErrNotACounter) {
		t.Fatalf("Add to a non-number: %v", err)
	}
	if v, err := recipe.NewCounter(c.Node(0), "/counters/missing").Get(ctx); err != nil || v != 0 {
		t.Fatalf("a missing counter: %d %v", v, err)
	}
}

func TestBarrier(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	b := recipe.NewBarrier(c.Node(0), "/barriers/deploy")
	if err := b.Wait(ctx); err != nil { // not held: no wait
		t.Fatal(err)
	}
	if err := b.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	passed := make(chan int, 3)
	for i := range 3 {
		go func() {
			if err := recipe.NewBarrier(c.Node(i), "/barriers/deploy").Wait(ctx); err != nil {
				t.Error(err)
			}
			passed <- i
		}()
	}
	select {
	case i := <-passed:
		t.Fatalf("waiter %d passed a held barrier", i)
	case <-time.After(300 * time.Millisecond):
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-passed:
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter did not pass the released barrier")
		}
	}
	// Held through a session: released when the session ends.
	s := coordtest.Session(t, c.Node(1), time.Minute)
	if err := b.Hold(ctx, coord.WithLease(s.Lease())); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	s.Close(ctx)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDoubleBarrier: nobody passes Enter until all three have entered,
// nobody passes Leave until all have left; a participant whose session
// ends counts as gone.
func TestDoubleBarrier(t *testing.T) {
	c := coordtest.New(t, 3)
	ctx := ctxT(t)
	const n = 3
	var entered, inside, left atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		s := coordtest.Session(t, c.Node(i), time.Minute)
		d := recipe.NewDoubleBarrier(s, "/barriers/round", n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			entered.Add(1)
			if err := d.Enter(ctx); err != nil {
				t.Error(err)
				return
			}
			if e := entered.Load(); e != n {
				t.Errorf("passed Enter with %d of %d entered", e, n)
			}
			inside.Add(1)
			time.Sleep(time.Duration(i*50) * time.Millisecond) // leave at different times
			left.Add(1)
			if err := d.Leave(ctx); err != nil {
				t.Error(err)
				return
			}
			if l := left.Load(); l != n {
				t.Errorf("passed Leave with %d of %d left", l, n)
			}
		}()
	}
	wg.Wait()
	if inside.Load() != n {
		t.Fatalf("%d passed Enter", inside.Load())
	}
	if g, _ := c.Node(0).Get(ctx, "/barriers/round/", coord.WithPrefix(), coord.WithCountOnly()); g.Count != 0 {
		t.Fatalf("%d keys left under the barrier after the round", g.Count)
	}

	// Two participants of a pair; one's session ends inside: the other
	// does not wait for it in Leave.
	s1, s2 := coordtest.Session(t, c.Node(0), time.Minute), coordtest.Session(t, c.Node(1), time.Minute)
	d1, d2 := recipe.NewDoubleBarrier(s1, "/barriers/pair", 2), recipe.NewDoubleBarrier(s2, "/barriers/pair", 2)
	errs := make(chan error, 2)
	go func() { errs <- d1.Enter(ctx) }()
	go func() { errs <- d2.Enter(ctx) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s2.Close(ctx) // d2 dies inside
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := d1.Leave(lctx); err != nil {
		t.Fatalf("Leave after the other participant's session ended: %v", err)
	}
}
