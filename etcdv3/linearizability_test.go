package etcdv3

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/coordkit/coordkit/coord/coordtest"
)

// kvInput is one operation on a key: a put, a get, or a compare-and-swap
// on the value (put new if the value is old).
type kvInput struct {
	op       string // "put", "get", "cas"
	key      string
	old, new string
}

// kvOutput is what the operation returned; unknown for a write whose
// outcome is not known (an error after it may have been sent).
type kvOutput struct {
	value     string
	succeeded bool
	unknown   bool
}

// kvModel is a register per key ("" for a missing key), partitioned by
// key.
var kvModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(kvInput).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(kvInput), output.(kvOutput)
		switch in.op {
		case "put":
			return true, in.new
		case "get":
			return out.value == s, s
		default: // cas
			if out.unknown {
				if s == in.old {
					return true, in.new
				}
				return true, s
			}
			if out.succeeded != (s == in.old) {
				return false, s
			}
			if out.succeeded {
				return true, in.new
			}
			return true, s
		}
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
}

// TestModelRejectsAStaleRead: the model the test below checks with is not
// one that accepts everything.
func TestModelRejectsAStaleRead(t *testing.T) {
	h := []porcupine.Operation{
		{ClientId: 0, Input: kvInput{op: "put", key: "k", new: "1"}, Call: 0, Output: kvOutput{}, Return: 10},
		{ClientId: 1, Input: kvInput{op: "get", key: "k"}, Call: 20, Output: kvOutput{value: ""}, Return: 30},
	}
	if porcupine.CheckOperations(kvModel, h) {
		t.Fatal("a read after a completed put that misses it was found linearizable")
	}
	h[1].Output = kvOutput{value: "1"}
	if !porcupine.CheckOperations(kvModel, h) {
		t.Fatal("a read after a put that sees it was found not linearizable")
	}
}

// TestLinearizableThroughClientv3 drives random puts, gets and
// compare-and-swaps through clientv3, two clients on each member's v3
// API, while the leader is cut off and healed, and checks the history
// with porcupine: what etcd clients see of coordkit is linearizable.
func TestLinearizableThroughClientv3(t *testing.T) {
	c := serve(t, 3, coordtest.WithPartitions())
	ctx := ctxT(t)
	keys := []string{"/lin/a", "/lin/b", "/lin/c"}
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		seq     atomic.Int64
		unknown atomic.Int64
	)
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for id := range 6 {
		cli := client(t, c.endpoints[id%3])
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(id), 7))
			for runCtx.Err() == nil {
				key := keys[r.IntN(len(keys))]
				in := kvInput{key: key}
				var out kvOutput
				octx, cancel := context.WithTimeout(ctx, 2*time.Second)
				call := now()
				var err error
				switch p := r.IntN(10); {
				case p < 4:
					in.op, in.new = "put", fmt.Sprint(seq.Add(1))
					_, err = cli.Put(octx, key, in.new)
				case p < 8:
					in.op = "get"
					var g *clientv3.GetResponse
					if g, err = cli.Get(octx, key); err == nil && len(g.Kvs) == 1 {
						out.value = string(g.Kvs[0].Value)
					}
				default:
					in.op, in.new = "cas", fmt.Sprint(seq.Add(1))
					var g *clientv3.GetResponse
					if g, err = cli.Get(octx, key, clientv3.WithSerializable()); err == nil {
						if len(g.Kvs) == 1 {
							in.old = string(g.Kvs[0].Value)
						}
						call = now() // the CAS itself
						var tr *clientv3.TxnResponse
						tr, err = cli.Txn(octx).If(clientv3.Compare(clientv3.Value(key), "=", in.old)).
							Then(clientv3.OpPut(key, in.new)).Commit()
						if in.old == "" && err == nil { // a missing key: compare its version instead
							tr, err = cli.Txn(octx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).
								Then(clientv3.OpPut(key, in.new)).Commit()
						}
						if err == nil {
							out.succeeded = tr.Succeeded
						}
					} else {
						cancel()
						continue
					}
				}
				ret := now()
				cancel()
				if err != nil {
					if in.op == "get" {
						continue // a failed read changed nothing
					}
					out, ret = kvOutput{unknown: true}, math.MaxInt64
					unknown.Add(1)
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: id, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second) // traffic first; then the fault, under it
	leader := c.WaitLeader(0)
	c.Isolate(leader)
	time.Sleep(1500 * time.Millisecond)
	c.Heal(leader)
	time.Sleep(1500 * time.Millisecond)
	stop()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d operations through clientv3 (%d with an unknown outcome), leader %d cut off for 1.5s", len(history), unknown.Load(), leader)
	if len(history) < 100 {
		t.Fatalf("only %d operations", len(history))
	}
	switch res := porcupine.CheckOperationsTimeout(kvModel, history, time.Minute); res {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Fatal("the history through clientv3 is not linearizable")
	default:
		t.Fatalf("porcupine: %v", res)
	}
}
