package robustness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// faultKind is one kind of injected failure.
type faultKind int

const (
	faultRestart         faultKind = iota // a member closed, then reopened from disk
	faultRestartLeader                    // the shard leader's member closed, then reopened
	faultIsolate                          // a member cut off from the others, then healed
	faultIsolateLeader                    // the leader cut off, then healed
	faultSlow                             // every message a member receives delayed
	faultPowerLoss                        // a member loses power: what it had not synced is gone; then reopened
	faultPowerLossLeader                  // the leader's member loses power, then is reopened
	faultPowerLossAll                     // every member loses power at once, then all are reopened
	faultQuota                            // the store fills to its quota (NOSPACE alarm); then space is freed and the alarm disarmed
)

func (f faultKind) String() string {
	return [...]string{"restart", "restart-leader", "isolate", "isolate-leader", "slow",
		"power-loss", "power-loss-leader", "power-loss-all", "quota"}[f]
}

func (f faultKind) needsNetwork() bool { return f >= faultIsolate && f <= faultSlow }

func (f faultKind) needsPowerLoss() bool { return f >= faultPowerLoss && f <= faultPowerLossAll }

// Scenario is one randomized run.
type Scenario struct {
	Name      string
	Seed      int64
	Members   int
	Clients   int // per member
	Duration  time.Duration
	Faults    []faultKind // drawn from at random during the run
	Election  time.Duration
	SnapEvery uint64
}

// randomScenario draws a scenario's settings from seed.
func randomScenario(seed int64, d time.Duration) Scenario {
	rng := rand.New(rand.NewSource(seed))
	sc := Scenario{Seed: seed, Members: 3, Clients: 2 + rng.Intn(2), Duration: d,
		Election:  []time.Duration{500 * time.Millisecond, 750 * time.Millisecond, time.Second}[rng.Intn(3)],
		SnapEvery: []uint64{50, 200, 1000}[rng.Intn(3)]}
	if rng.Intn(8) == 0 {
		sc.Members = 1
		sc.Faults = []faultKind{faultRestart}
	} else {
		all := []faultKind{faultRestart, faultRestartLeader, faultIsolate, faultIsolateLeader, faultSlow,
			faultPowerLoss, faultPowerLossLeader, faultPowerLossAll, faultQuota}
		n := 1 + rng.Intn(3)
		for _, i := range rng.Perm(len(all))[:n] {
			sc.Faults = append(sc.Faults, all[i])
		}
	}
	sc.Name = fmt.Sprintf("seed%d-%dm-%v", seed, sc.Members, sc.Faults)
	return sc
}

// Report is what a run observed.
type Report struct {
	Ops, Unknown, SerialReads, WatchEvents, FaultsInjected int
	// NoSpace counts the writes refused under a NOSPACE alarm, Compacted
	// the revision faultQuota compacted the history to (1: none).
	NoSpace   int
	Compacted int64
	// Acked counts the acknowledged writes the durability check looked
	// for in the committed history, Lost those it did not find there.
	Acked, Lost  int
	Linearizable porcupine.CheckResult
	Violations   []string
	history      []porcupine.Operation
	info         porcupine.LinearizationInfo
}

func (r *Report) violate(format string, args ...any) {
	if len(r.Violations) < 50 {
		r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
	}
}

// serialRead is a serializable Get: checked against the committed history.
type serialRead struct {
	member    int
	node      *coord.Node // the member's incarnation that answered
	call, ret int64
	key       string
	rev       int64
	found     bool
	value     string
	modRev    int64
}

// recorder collects what clients saw, with times from one monotonic clock.
type recorder struct {
	start   time.Time
	mu      sync.Mutex
	ops     []porcupine.Operation
	serial  []serialRead
	noSpace atomic.Int64 // writes refused with ErrNoSpace
	// cuts holds, for each member incarnation that lost power, the instant
	// of the power failure (see powerLoss).
	cuts map[*coord.Node]int64
}

// powerLoss cuts the power of members (c.PowerLoss) and records, for each
// incarnation, the instant it returns: until the member stops, the harness
// lets it run on syncs that do nothing, and a real power failure answers
// nothing after its instant, so what it answered after (a serializable
// read of state it applied but never synced the commit of) is not
// checked.
func (r *recorder) powerLoss(c *coordtest.Cluster, members ...int) {
	nodes := make([]*coord.Node, 0, len(members))
	for _, i := range members {
		nodes = append(nodes, c.Node(i))
	}
	cut := int64(c.PowerLoss(members...).Sub(r.start))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cuts == nil {
		r.cuts = map[*coord.Node]int64{}
	}
	for _, n := range nodes {
		if n != nil {
			r.cuts[n] = cut
		}
	}
}

// outcome is writeOutcome, counting the writes the NOSPACE alarm refused.
func (r *recorder) outcome(err error) (output, bool) {
	if errors.Is(err, coord.ErrNoSpace) {
		r.noSpace.Add(1)
	}
	return writeOutcome(err)
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(client int, in input, call int64, out output) {
	ret := r.now()
	r.mu.Lock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	r.mu.Unlock()
}

var keys = []string{"/rob/k0", "/rob/k1", "/rob/k2", "/rob/k3", "/rob/k4", "/rob/k5"}

// run executes a scenario. Test-only fault hooks (stale reads, dropped watch
// events) are set by the caller around it.
func run(t testing.TB, sc Scenario) *Report {
	opts := []coordtest.Option{coordtest.WithConfig(func(c *coord.Config) {
		c.ElectionTimeout = sc.Election
		c.HeartbeatInterval = sc.Election / 10
		c.SnapshotEntries = sc.SnapEvery
		c.CompactionOverhead = sc.SnapEvery / 5
		c.HistoryRetention = -1 // the checker replays the history; only faultQuota compacts
		c.RequestTimeout = 5 * time.Second
		if slices.Contains(sc.Faults, faultQuota) {
			c.MaxStoreBytes = quotaBytes
		}
	})}
	for _, f := range sc.Faults {
		if f.needsNetwork() {
			opts = append(opts, coordtest.WithPartitions())
			break
		}
	}
	for _, f := range sc.Faults {
		if f.needsPowerLoss() {
			opts = append(opts, coordtest.WithPowerLoss())
			break
		}
	}
	c := coordtest.New(t, sc.Members, opts...)
	rep := &Report{}
	rec := &recorder{start: time.Now()}
	stop := make(chan struct{})
	var wg sync.WaitGroup

	cp := &compactions{from: 1}
	// Watchers: one per member from revision 1, resumed after restarts.
	watchers := make([]*watchLog, sc.Members)
	for i := range watchers {
		watchers[i] = &watchLog{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			watchers[i].follow(c, i, stop)
		}(i)
	}
	// Traffic.
	var seq atomic.Int64
	for m := 0; m < sc.Members; m++ {
		for k := 0; k < sc.Clients; k++ {
			id := m*sc.Clients + k
			wg.Add(1)
			go func() {
				defer wg.Done()
				client(c, m, id, rand.New(rand.NewSource(sc.Seed*1000+int64(id))), rec, &seq, stop)
			}()
		}
	}
	// Faults.
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		rep.FaultsInjected = inject(c, sc, rand.New(rand.NewSource(sc.Seed)), stop, cp, watchers, rec)
	}()
	time.Sleep(sc.Duration)
	close(stop)
	<-faultsDone
	wg.Wait()

	settle(t, c, rep)
	ref := reference(t, c, cp)
	rep.Ops = len(rec.ops)
	rep.NoSpace, rep.Compacted = int(rec.noSpace.Load()), cp.from
	rep.SerialReads = len(rec.serial)
	rep.history = finishHistory(rec.ops, rep)
	checkRevisions(rep, rep.history)
	checkDurability(rep, rep.history, ref)
	checkSerial(rep, answeredBeforeCut(rec.serial, rec.cuts), ref)
	for i, w := range watchers {
		rep.WatchEvents += checkWatch(rep, fmt.Sprintf("member %d", i), w, ref)
	}
	checkResume(t, c, rep, ref, rand.New(rand.NewSource(sc.Seed)))
	res, info := porcupine.CheckOperationsVerbose(kvModel(), rep.history, 60*time.Second)
	rep.Linearizable, rep.info = res, info
	if res == porcupine.Illegal {
		rep.violate("history is not linearizable")
	}
	return rep
}

// client sends random requests to member m until stop closes.
func client(c *coordtest.Cluster, m, id int, rng *rand.Rand, rec *recorder, seq *atomic.Int64, stop chan struct{}) {
	leases := map[string]int64{} // key -> a lease of this client's bound to it
	lastRev := map[string]int64{}
	for {
		select {
		case <-stop:
			return
		default:
		}
		n := c.Node(m)
		if n == nil {
			time.Sleep(20 * time.Millisecond) // member down: pace, do not spin
			continue
		}
		key := keys[rng.Intn(len(keys))]
		value := fmt.Sprintf("v%d", seq.Add(1))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		call := rec.now()
		switch p := rng.Intn(100); {
		case p < 28: // put
			r, err := n.Put(ctx, key, []byte(value))
			if out, ok := rec.outcome(err); ok {
				if err == nil {
					out.Rev = int64(r.Header.Revision)
					lastRev[key] = out.Rev
				}
				rec.add(id, input{Kind: opPut, Key: key, Value: value}, call, out)
			}
		case p < 53: // linearizable get
			r, err := n.Get(ctx, key)
			if err == nil {
				out := output{Rev: int64(r.Header.Revision)}
				if len(r.KVs) == 1 {
					out.Found, out.Value, out.ModRev = true, string(r.KVs[0].Value), int64(r.KVs[0].ModRevision)
					lastRev[key] = out.ModRev
				}
				rec.add(id, input{Kind: opGet, Key: key}, call, out)
			}
		case p < 63: // serializable get
			r, err := n.Get(ctx, key, coord.WithSerializable())
			if err == nil {
				sr := serialRead{member: m, node: n, call: call, ret: rec.now(), key: key, rev: int64(r.Header.Revision)}
				if len(r.KVs) == 1 {
					sr.found, sr.value, sr.modRev = true, string(r.KVs[0].Value), int64(r.KVs[0].ModRevision)
				}
				rec.mu.Lock()
				rec.serial = append(rec.serial, sr)
				rec.mu.Unlock()
			}
		case p < 71: // delete
			r, err := n.Delete(ctx, key)
			if out, ok := rec.outcome(err); ok {
				if err == nil {
					out.Rev, out.Deleted = int64(r.Header.Revision), r.Deleted
				}
				rec.add(id, input{Kind: opDelete, Key: key}, call, out)
			}
		case p < 86: // compare-and-swap on the last revision this client saw
			exp := lastRev[key]
			if exp == 0 || rng.Intn(4) == 0 {
				exp = 1 + rng.Int63n(int64(seq.Load())+1)
			}
			r, err := n.Txn(ctx).If(coord.Compare(coord.ModRevision(key), "=", exp)).
				Then(coord.OpPut(key, []byte(value))).Commit()
			if out, ok := rec.outcome(err); ok {
				if err == nil {
					out.Rev, out.Succeeded = int64(r.Header.Revision), r.Succeeded
				}
				rec.add(id, input{Kind: opCAS, Key: key, Value: value, Rev: exp}, call, out)
			}
		case p < 95: // put with a lease bound to this key
			l, ok := leases[key]
			if !ok {
				g, err := n.Grant(ctx, 10*time.Minute)
				if err != nil {
					break
				}
				l = int64(g.ID)
				leases[key] = l
				call = rec.now()
			}
			r, err := n.Put(ctx, key, []byte(value), coord.WithLease(coord.LeaseID(l)))
			if out, ok := rec.outcome(err); ok {
				if err == nil {
					out.Rev = int64(r.Header.Revision)
				}
				rec.add(id, input{Kind: opPut, Key: key, Value: value, Lease: l}, call, out)
			}
		default: // revoke
			l, ok := leases[key]
			if !ok {
				break
			}
			err := n.Revoke(ctx, coord.LeaseID(l))
			if out, ok := rec.outcome(err); ok {
				rec.add(id, input{Kind: opRevoke, Key: key, Lease: l}, call, out)
				if !out.Unknown {
					delete(leases, key)
				}
			}
		}
		cancel()
	}
}

// writeOutcome classifies a write's error: recorded or not (the request
// certainly did not happen), and if recorded whether the outcome is known.
func writeOutcome(err error) (output, bool) {
	switch {
	case err == nil:
		return output{}, true
	case errors.Is(err, coord.ErrLeaseNotFound):
		return output{LeaseNotFound: true}, true
	case errors.Is(err, coord.ErrOutcomeUnknown):
		return output{Unknown: true}, true
	case errors.Is(err, coord.ErrNoLeader), errors.Is(err, coord.ErrClosed):
		return output{}, false // refused before it was proposed
	case errors.Is(err, coord.ErrNoSpace):
		// Refused under the NOSPACE alarm, and not applied: left out of
		// the history, a read that saw it would be a violation.
		return output{}, false
	}
	return output{Unknown: true}, true
}

// finishHistory gives writes of unknown outcome an open end: they may take
// effect at any time after their call.
func finishHistory(ops []porcupine.Operation, rep *Report) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, op.Return)
	}
	out := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		if op.Output.(output).Unknown {
			op.Return = end + 1
			rep.Unknown++
		}
		out[i] = op
	}
	return out
}

// inject runs faults until stop closes and returns how many it injected.
// faultQuota compacts the history up to where every watcher has read, and
// keeps the events it compacts in cp.
func inject(c *coordtest.Cluster, sc Scenario, rng *rand.Rand, stop chan struct{}, cp *compactions, watchers []*watchLog, rec *recorder) int {
	count := 0
	wait := func(d time.Duration) bool {
		select {
		case <-stop:
			return false
		case <-time.After(d):
			return true
		}
	}
	for wait(time.Duration(300+rng.Intn(700)) * time.Millisecond) {
		f := sc.Faults[rng.Intn(len(sc.Faults))]
		target := rng.Intn(sc.Members)
		if f == faultRestartLeader || f == faultIsolateLeader || f == faultPowerLossLeader {
			if l := c.Leader(0); l >= 0 {
				target = l
			}
		}
		hold := time.Duration(500+rng.Intn(1500)) * time.Millisecond
		count++
		switch f {
		case faultRestart, faultRestartLeader:
			c.Stop(target)
			wait(hold)
			c.Restart(target)
		case faultIsolate, faultIsolateLeader:
			c.Isolate(target)
			wait(hold)
			c.Heal(target)
		case faultSlow:
			c.Slow(target, time.Duration(5+rng.Intn(30))*time.Millisecond)
			wait(hold)
			c.Slow(target, 0)
		case faultPowerLoss, faultPowerLossLeader:
			rec.powerLoss(c, target)
			wait(hold)
			c.Restart(target)
		case faultPowerLossAll:
			all := make([]int, sc.Members)
			for i := range all {
				all[i] = i
			}
			rec.powerLoss(c, all...)
			wait(hold)
			for _, i := range all {
				c.Restart(i)
			}
		case faultQuota:
			fill(c, target)
			wait(hold)
			free(c, target, cp, watchers)
		}
	}
	return count
}

// quotaBytes is MaxStoreBytes in the scenarios with faultQuota: the
// history of a few seconds of traffic, so that filling it takes tens of
// puts of fillValue.
const quotaBytes = 1 << 20

var fillValue = make([]byte, 32<<10)

// compactions holds the history faultQuota compacted away: the events
// under /rob/ of the revisions before from, read back before compacting.
type compactions struct {
	from   int64
	events []refEvent
}

// fill writes to /fill/ through member m (or the next one up) until the
// shard's NOSPACE alarm refuses a put, for at most 10 s.
func fill(c *coordtest.Cluster, m int) {
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		n := liveNode(c, m)
		if n == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := n.Put(ctx, fmt.Sprintf("/fill/%d", i), fillValue)
		cancel()
		if errors.Is(err, coord.ErrNoSpace) {
			return
		}
	}
}

// free frees the store through member m (or the next one up): it deletes
// /fill/, waits up to 3 s for every watcher to have read past the delete
// (each resumes from its next revision, so the history before the lowest
// of those can go), reads back the /rob/ events it is about to compact,
// compacts, and disarms the alarm. Each step is best effort: a member
// lost meanwhile only leaves the store fuller.
func free(c *coordtest.Cluster, m int, cp *compactions, watchers []*watchLog) {
	n := liveNode(c, m)
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := n.Delete(ctx, "/fill/", coord.WithPrefix())
	if err != nil {
		return
	}
	low := func() int64 {
		r := int64(math.MaxInt64)
		for _, w := range watchers {
			r = min(r, w.next.Load())
		}
		return r
	}
	for deadline := time.Now().Add(3 * time.Second); low() <= int64(d.Header.Revision) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	g, err := n.Get(ctx, "/fill/")
	if err != nil {
		return
	}
	// A watcher's next may be the revision after the last one.
	if to := min(low(), int64(g.Header.Revision)); to > cp.from {
		evs, err := watchRange(n, cp.from, to-1)
		if err != nil {
			return
		}
		// Kept before compacting: whether or not the compaction is applied,
		// the history is then these events and what a watch from to reads.
		cp.events = append(cp.events, evs...)
		cp.from = to
		if _, err := n.Compact(ctx, 0, coord.Revision(to)); err != nil {
			return
		}
	}
	_ = n.DisarmAlarms(ctx)
}

// liveNode returns member m's Node, or the first member's up, or nil.
func liveNode(c *coordtest.Cluster, m int) *coord.Node {
	for i := range c.Size() {
		if n := c.Node((m + i) % c.Size()); n != nil {
			return n
		}
	}
	return nil
}
