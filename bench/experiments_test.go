package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
)

// The experiments below back the suggestions in RESULTS.md. They take
// minutes and measure rather than check, so they run only with
// BENCH_EXPERIMENTS=1:
//
//	BENCH_EXPERIMENTS=1 go test -run Experiment -v .

func experiments(t *testing.T) {
	if os.Getenv("BENCH_EXPERIMENTS") == "" {
		t.Skip("set BENCH_EXPERIMENTS=1 to run")
	}
}

// TestExperimentDragonboatSmallConfig compares raw dragonboat with the
// NodeHost settings coordkit uses (16 LogDB shards, default engine: 16
// workers of each kind) against 1 LogDB shard and 1 worker of each kind:
// idle memory per member, goroutines, and put throughput. Each
// configuration runs twice, each time in a fresh process (this test binary
// again), so that memory figures start clean.
func TestExperimentDragonboatSmallConfig(t *testing.T) {
	experiments(t)
	if mode := os.Getenv("BENCH_EXPERIMENT_SMALL"); mode != "" {
		smallConfigRun(t, mode == "1")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"0", "1", "0", "1"} {
		cmd := exec.Command(exe, "-test.run=^TestExperimentDragonboatSmallConfig$", "-test.v")
		cmd.Env = append(os.Environ(), "BENCH_EXPERIMENT_SMALL="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "small=") {
				t.Log(strings.TrimSpace(line))
			}
		}
	}
}

func smallConfigRun(t *testing.T, small bool) {
	base, _, err := memStatus()
	if err != nil {
		t.Fatal(err)
	}
	s, err := startRawWith(3, func(c *config.NodeHostConfig) {
		if small {
			c.Expert.LogDB.Shards = 1
			c.Expert.Engine = config.EngineConfig{ExecShards: 1, CommitShards: 1, ApplyShards: 1, SnapshotShards: 1, CloseShards: 1}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	time.Sleep(5 * time.Second)
	rss, _, _ := memStatus()
	goroutines := runtime.NumGoroutine()
	r := putLoad(params{duration: 5 * time.Second}, s, 256, 16)
	seq := putLoad(params{duration: 3 * time.Second}, s, 1, 16)
	t.Logf("small=%v: idle RSS/member %s, goroutines %d; put-256 %s; put-seq %s",
		small, mib((rss-base)/3), goroutines, cell(r, metricOps), cell(seq, metricOps))
}

// TestExperimentFollowerProposalsDropped overloads a 3-member cluster with
// 1,024 clients for 15s, a third of them on each member, and counts the
// puts that failed by member. With dragonboat's receive queue (1,024
// messages) full, proposals that followers forward to the leader are
// dropped; the caller learns nothing until its deadline (5s here) and then
// gets a timeout for a write that was never applied. Raw dragonboat shows
// it. coordkit bounds each attempt and proposes a timed-out write again
// under the same request ID (applied at most once), and caps its writes in
// flight per member: its failures should be 0, and its retries are logged.
func TestExperimentFollowerProposalsDropped(t *testing.T) {
	experiments(t)
	for _, kind := range []string{sysCoordkit, sysRaw} {
		s, err := startSystem(kind, 3)
		if err != nil {
			t.Fatal(err)
		}
		v := []byte(strings.Repeat("v", 16))
		var mu sync.Mutex
		failed := map[int]int{}
		var first []string
		r := drive(1024, 15*time.Second, func(ctx context.Context, c, i int) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			t0 := time.Now()
			err := s.put(ctx, c%3, clientKey("/bench/put/", c, i), v)
			if err != nil && ctx.Err() != context.Canceled {
				mu.Lock()
				failed[c%3]++
				if len(first) < 3 {
					first = append(first, fmt.Sprintf("member %d after %v: %v", c%3, time.Since(t0).Round(time.Millisecond), err))
				}
				mu.Unlock()
			}
			return err
		})
		var leaders []string
		switch s := s.(type) {
		case *coordkitSystem:
			var retries uint64
			for _, n := range s.nodes {
				retries += n.Metrics().ProposalRetries
			}
			leaders = append(leaders, fmt.Sprintf("%d attempts proposed again", retries))
			for i, n := range s.nodes {
				st, err := n.Status(context.Background())
				if err == nil && len(st.Shards) > 0 {
					leaders = append(leaders, "member "+strconv.Itoa(i)+": leader replica "+strconv.FormatUint(st.Shards[0].Leader, 10)+
						" term "+strconv.FormatUint(st.Shards[0].Term, 10)+" (own replica "+strconv.FormatUint(st.ReplicaID, 10)+")")
				}
			}
		case *rawSystem:
			for i, nh := range s.hosts {
				l, term, _, _ := nh.GetLeaderID(rawShardID)
				leaders = append(leaders, fmt.Sprintf("member %d: leader replica %d term %d (own replica %d)", i, l, term, i+1))
			}
		}
		s.close()
		sort.Strings(first)
		t.Logf("%s: %s; failed puts by member %v; %s; e.g. %s", kind, cell(figure{result: r}, metricOps), failed, strings.Join(leaders, ", "), strings.Join(first, "; "))
	}
}
