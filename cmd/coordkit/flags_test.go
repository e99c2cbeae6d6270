package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
)

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := coord.Config{
		Name:              "default",
		DataDir:           "default.coordkit",
		RaftAddress:       "127.0.0.1:2380",
		HeartbeatInterval: 100 * time.Millisecond,
		ElectionTimeout:   time.Second,
	}
	if !reflect.DeepEqual(o.cfg, want) {
		t.Errorf("cfg = %+v, want %+v", o.cfg, want)
	}
	if o.clientAddr != "127.0.0.1:2379" || o.logLevel != slog.LevelInfo {
		t.Errorf("clientAddr %q, logLevel %v; want 127.0.0.1:2379, INFO", o.clientAddr, o.logLevel)
	}
}

func TestParseFlagsGood(t *testing.T) {
	three := "m1=http://127.0.0.1:12380,m2=127.0.0.1:22380, m3=https://127.0.0.1:32380/"
	threeMap := map[string]string{"m1": "127.0.0.1:12380", "m2": "127.0.0.1:22380", "m3": "127.0.0.1:32380"}
	for _, tc := range []struct {
		name   string
		args   []string
		check  func(o *options) bool
		expect string
	}{
		{
			name: "founding member of three",
			args: []string{"--name", "m1", "--data-dir", "/d/m1", "--listen-peer-urls", "http://127.0.0.1:12380",
				"--listen-client-urls", "http://127.0.0.1:12379", "--initial-cluster", three,
				"--initial-cluster-token", "tok", "--initial-cluster-state", "new"},
			check: func(o *options) bool {
				return o.cfg.Name == "m1" && o.cfg.DataDir == "/d/m1" && o.cfg.RaftAddress == "127.0.0.1:12380" &&
					o.clientAddr == "127.0.0.1:12379" && reflect.DeepEqual(o.cfg.InitialCluster, threeMap) &&
					o.cfg.ClusterToken == "tok" && !o.cfg.Join && !o.cfg.Observer
			},
			expect: "m1 founding with the three-member map",
		},
		{
			name: "observer joining, addresses without scheme",
			args: []string{"-name=m4", "-listen-peer-urls=127.0.0.1:42380", "-listen-client-urls=127.0.0.1:42379",
				"-initial-cluster=m1=127.0.0.1:12380,m4=127.0.0.1:42380", "-initial-cluster-state=existing", "-observer"},
			check: func(o *options) bool {
				return o.cfg.Join && o.cfg.Observer && o.cfg.RaftAddress == "127.0.0.1:42380" &&
					o.clientAddr == "127.0.0.1:42379" && o.cfg.DataDir == "m4.coordkit" && len(o.cfg.InitialCluster) == 2
			},
			expect: "Join and Observer set",
		},
		{
			name:   "no client listener",
			args:   []string{"--listen-client-urls", ""},
			check:  func(o *options) bool { return o.clientAddr == "" },
			expect: "clientAddr empty",
		},
		{
			name: "peer TLS, shards, timing, log level",
			args: []string{"--peer-trusted-ca-file", "ca.pem", "--peer-cert-file", "m.pem", "--peer-key-file", "m-key.pem",
				"--insecure-peers", "--shards", "4", "--heartbeat-interval", "50", "--election-timeout", "750", "--log-level", "DEBUG"},
			check: func(o *options) bool {
				return reflect.DeepEqual(o.cfg.TLS, &coord.TLSConfig{CAFile: "ca.pem", CertFile: "m.pem", KeyFile: "m-key.pem"}) &&
					o.cfg.InsecurePeers && o.cfg.Shards == 4 && o.cfg.HeartbeatInterval == 50*time.Millisecond &&
					o.cfg.ElectionTimeout == 750*time.Millisecond && o.logLevel == slog.LevelDebug
			},
			expect: "TLS files, 4 shards, 50ms/750ms, debug",
		},
		{
			name:   "quota",
			args:   []string{"--quota-backend-bytes", "8388608"},
			check:  func(o *options) bool { return o.cfg.MaxStoreBytes == 8<<20 },
			expect: "MaxStoreBytes 8 MiB",
		},
		{
			name: "integrity checks and topic retention",
			args: []string{"--corrupt-check-time", "10m", "--pubsub-retention-interval", "1s"},
			check: func(o *options) bool {
				return o.cfg.HashCheckInterval == 10*time.Minute && o.retentionEvery == time.Second
			},
			expect: "HashCheckInterval 10m, retention every 1s",
		},
		{
			name:   "defaults for checks and retention",
			args:   nil,
			check:  func(o *options) bool { return o.cfg.HashCheckInterval == 0 && o.retentionEvery == 5*time.Second },
			expect: "HashCheckInterval left to coord's default, retention every 5s",
		},
		{
			name: "observer of a fleet: seeds, admin address, grace period",
			args: []string{"--initial-cluster-state", "existing", "--observer",
				"--join-seeds", "http://127.0.0.1:12381, 127.0.0.1:22381", "--listen-admin-urls", "127.0.0.1:42381",
				"--observer-grace-period", "30s"},
			check: func(o *options) bool {
				return reflect.DeepEqual(o.cfg.JoinSeeds, []string{"127.0.0.1:12381", "127.0.0.1:22381"}) &&
					o.cfg.AdminAddress == "127.0.0.1:42381" && o.cfg.ObserverGracePeriod == 30*time.Second
			},
			expect: "two seeds, admin 127.0.0.1:42381, grace 30s",
		},
		{
			name: "observer of a fleet found through DNS",
			args: []string{"--initial-cluster-state", "existing", "--observer",
				"--join-seeds", "srv:_admin._tcp.coordkit.svc.cluster.local", "--discovery-srv", "example.com."},
			check: func(o *options) bool {
				return reflect.DeepEqual(o.cfg.JoinSeeds, []string{"srv:_admin._tcp.coordkit.svc.cluster.local",
					"srv:_coordkit-admin._tcp.example.com"})
			},
			expect: "an SRV seed, and the --discovery-srv record",
		},
		{
			name:   "restore",
			args:   []string{"--restore", "flags_test.go"},
			check:  func(o *options) bool { return o.restore == "flags_test.go" },
			expect: "restore flags_test.go",
		},
		{
			name:   "pprof",
			args:   []string{"--enable-pprof"},
			check:  func(o *options) bool { return o.pprof && o.clientTLS == nil && o.bearer == "" },
			expect: "pprof on, no TLS, no token",
		},
		{
			name:   "history and snapshots",
			args:   []string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "500", "--snapshot-count", "20000"},
			check:  func(o *options) bool { return o.cfg.HistoryRetention == 500 && o.cfg.SnapshotEntries == 20000 },
			expect: "HistoryRetention 500, SnapshotEntries 20000",
		},
		{
			name:   "disk reserve",
			args:   []string{"--disk-reserve-bytes", "1048576"},
			check:  func(o *options) bool { return o.cfg.DiskReserve == 1<<20 },
			expect: "DiskReserve 1 MiB",
		},
		{
			name:   "disk reserve off",
			args:   []string{"--disk-reserve-bytes", "0"},
			check:  func(o *options) bool { return o.cfg.DiskReserve < 0 },
			expect: "DiskReserve negative (off)",
		},
		{
			name:   "automatic compaction off",
			args:   []string{"--auto-compaction-retention", "0"},
			check:  func(o *options) bool { return o.cfg.HistoryRetention < 0 },
			expect: "HistoryRetention negative (off)",
		},
		{
			name:   "IPv6 peer address",
			args:   []string{"--listen-peer-urls", "http://[::1]:2380", "--initial-cluster", "default=[::1]:2380"},
			check:  func(o *options) bool { return o.cfg.RaftAddress == "[::1]:2380" },
			expect: "RaftAddress [::1]:2380",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Errorf("got %+v (client %q); want %s", o.cfg, o.clientAddr, tc.expect)
			}
		})
	}
}

func TestParseFlagsBad(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the message must contain it: it names the flag
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"stray"}, `unexpected argument "stray"`},
		{[]string{"--name", ""}, "--name"},
		{[]string{"--listen-peer-urls", "127.0.0.1"}, "--listen-peer-urls"},
		{[]string{"--listen-peer-urls", "unix:///tmp/x"}, "--listen-peer-urls"},
		{[]string{"--listen-peer-urls", "http://127.0.0.1:2380/raft"}, "--listen-peer-urls"},
		{[]string{"--listen-peer-urls", "http://127.0.0.1:2380,http://127.0.0.1:2381"}, "--listen-peer-urls"},
		{[]string{"--listen-peer-urls", "127.0.0.1:0"}, "--listen-peer-urls"},
		{[]string{"--listen-peer-urls", ":2380"}, "--listen-peer-urls"},
		{[]string{"--listen-client-urls", "127.0.0.1:99999"}, "--listen-client-urls"},
		{[]string{"--initial-cluster", "default"}, "--initial-cluster"},
		{[]string{"--initial-cluster", "default=127.0.0.1:2380,default=127.0.0.1:2381"}, "--initial-cluster"},
		{[]string{"--initial-cluster", "default=127.0.0.1:2380,b=127.0.0.1:2380"}, "--initial-cluster"},
		{[]string{"--initial-cluster", "a=127.0.0.1:2380"}, `does not name this member "default"`},
		{[]string{"--initial-cluster", "default=127.0.0.1:2390"}, "--initial-cluster"},
		{[]string{"--initial-cluster-state", "old"}, "--initial-cluster-state"},
		{[]string{"--observer"}, "--observer"},
		{[]string{"--peer-cert-file", "c", "--peer-key-file", "k"}, "--peer-trusted-ca-file"},
		{[]string{"--peer-trusted-ca-file", "ca", "--peer-key-file", "k"}, "--peer-cert-file"},
		{[]string{"--peer-trusted-ca-file", "ca", "--peer-cert-file", "c"}, "--peer-key-file"},
		{[]string{"--shards", "-1"}, "--shards"},
		{[]string{"--shards", "two"}, "shards"},
		{[]string{"--heartbeat-interval", "0"}, "--heartbeat-interval"},
		{[]string{"--election-timeout", "-5"}, "--election-timeout"},
		{[]string{"--heartbeat-interval", "100", "--election-timeout", "400"}, "--election-timeout"},
		{[]string{"--log-level", "verbose"}, "--log-level"},
		{[]string{"--auto-compaction-mode", "periodic"}, "--auto-compaction-mode"},
		{[]string{"--auto-compaction-retention", "-1"}, "--auto-compaction-retention"},
		{[]string{"--auto-compaction-retention", "1h"}, "auto-compaction-retention"},
		{[]string{"--snapshot-count", "0"}, "--snapshot-count"},
		{[]string{"--disk-reserve-bytes", "-1"}, "--disk-reserve-bytes"},
		{[]string{"--pubsub-retention-interval", "-1s"}, "--pubsub-retention-interval"},
		{[]string{"--join-seeds", "127.0.0.1:1"}, "--join-seeds"},
		{[]string{"--initial-cluster-state", "existing", "--observer", "--join-seeds", "nope"}, "--join-seeds"},
		{[]string{"--initial-cluster-state", "existing", "--observer", "--join-seeds", "srv:"}, "--join-seeds"},
		{[]string{"--discovery-srv", "example.com"}, "--discovery-srv"},
		{[]string{"--listen-admin-urls", "x"}, "--listen-admin-urls"},
		{[]string{"--observer-grace-period", "soon"}, "observer-grace-period"},
		{[]string{"--cert-file", "c"}, "--cert-file"},
		{[]string{"--cert-file", "/nonexistent/c", "--key-file", "/nonexistent/k"}, "--cert-file"},
		{[]string{"--client-cert-auth"}, "--client-cert-auth"},
		{[]string{"--bearer-token-file", "/nonexistent/token"}, "--bearer-token-file"},
		{[]string{"--restore", "/nonexistent/backup"}, "--restore"},
		{[]string{"--restore", "/"}, "--restore: / is not a regular file"},
		{[]string{"--restore", "flags_test.go", "--initial-cluster-state", "existing"}, "--restore: needs --initial-cluster-state new"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			var usage *usageError
			if !errors.As(err, &usage) {
				t.Fatalf("err = %v, want a *usageError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var out strings.Builder
	if _, err := parseFlags([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "--initial-cluster-state") && !strings.Contains(out.String(), "-initial-cluster-state") {
		t.Errorf("usage does not list the flags:\n%s", out.String())
	}
}

func TestFlagError(t *testing.T) {
	// A missing CA file passes parseFlags; coord.Open refuses it.
	o, err := parseFlags([]string{"--data-dir", t.TempDir(), "--listen-client-urls", "",
		"--peer-trusted-ca-file", "missing-ca.pem", "--peer-cert-file", "m.pem", "--peer-key-file", "m-key.pem"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n, err := coord.Open(context.Background(), o.cfg)
	if err == nil {
		n.Close()
		t.Fatal("Open accepted a missing CA file")
	}
	err = flagError(err)
	var usage *usageError
	if !errors.As(err, &usage) || !strings.HasPrefix(err.Error(), "--peer-trusted-ca-file: ") {
		t.Errorf("flagError = %v, want a usage error starting with --peer-trusted-ca-file", err)
	}

	other := errors.New("listen tcp 127.0.0.1:2380: bind: address already in use")
	if got := flagError(other); !errors.Is(got, other) || errors.As(got, new(*usageError)) {
		t.Errorf("flagError(%v) = %v, want it unchanged", other, got)
	}
	wrapped := fmt.Errorf("open: %w: Shards: 2, but the cluster was created with 1", coord.ErrInvalidConfig)
	if got := flagError(wrapped); !strings.HasPrefix(got.Error(), "--shards: ") {
		t.Errorf("flagError(%v) = %v, want it to name --shards", wrapped, got)
	}
}
