package member

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// Every field without a default is named here; any other field left zero
// by WithDefaults is a default coord.Config documents but nothing applies.
var noDefault = map[string]bool{
	"DataDir": true, "Join": true, "Observer": true, "JoinSeeds": true, "DNSResolver": true, "AdminAddress": true, "TLS": true,
	"ClusterSecret": true, "InsecurePeers": true,
	"Shards":        true, // the persisted count, or DefaultShards, decided by boot.Resolve
	"WrapTransport": true, "FS": true, "DiskFree": true,
}

func TestWithDefaultsFillsEveryDefaultAndCopies(t *testing.T) {
	d := Settings{}.WithDefaults()
	v := reflect.ValueOf(d)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !noDefault[f.Name] && v.Field(i).IsZero() {
			t.Errorf("WithDefaults left %s zero", f.Name)
		}
	}
	want := Settings{Name: DefaultName, RaftAddress: DefaultRaftAddress, ClusterToken: DefaultClusterToken,
		RequestTimeout: DefaultRequestTimeout, HeartbeatInterval: DefaultHeartbeat, ElectionTimeout: DefaultElection,
		ObserverGracePeriod: DefaultObserverGrace, MaxKeyBytes: DefaultMaxKeyBytes, MaxValueBytes: DefaultMaxValueBytes,
		MaxTxnOps: DefaultMaxTxnOps, MaxRequestBytes: DefaultMaxRequestBytes, HistoryRetention: DefaultHistoryRetention,
		SnapshotEntries: DefaultSnapshotEntries, CompactionOverhead: DefaultCompactionOverhad, DiskReserve: DefaultDiskReserve,
		MaxStoreBytes: DefaultMaxStoreBytes, HashCheckInterval: DefaultHashCheck}
	got := d
	got.InitialCluster, got.Logger, got.JoinSeeds = nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}
	if ic := d.InitialCluster; len(ic) != 1 || ic[DefaultName] != DefaultRaftAddress {
		t.Errorf("default InitialCluster %v, want this member alone", ic)
	}

	given := Settings{Name: "a", RequestTimeout: time.Minute, HistoryRetention: -1,
		InitialCluster: map[string]string{"a": "127.0.0.1:1"}, JoinSeeds: []string{"127.0.0.1:2"}}
	c := given.WithDefaults()
	if c.Name != "a" || c.RequestTimeout != time.Minute || c.HistoryRetention != -1 {
		t.Errorf("WithDefaults changed a given value: %+v", c)
	}
	given.InitialCluster["b"], given.JoinSeeds[0] = "127.0.0.1:3", "changed"
	if len(c.InitialCluster) != 1 || c.JoinSeeds[0] != "127.0.0.1:2" {
		t.Errorf("WithDefaults shares the caller's map or slice: %v %v", c.InitialCluster, c.JoinSeeds)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	ok := Settings{DataDir: "/d"}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with a DataDir: %v", err)
	}
	cases := []struct {
		field string
		edit  func(*Settings)
	}{
		{"Observer", func(c *Settings) { c.Observer = true }},
		{"JoinSeeds", func(c *Settings) { c.JoinSeeds = []string{"127.0.0.1:1"} }},
		{"JoinSeeds", func(c *Settings) { c.Join, c.Observer, c.JoinSeeds = true, true, []string{"nope"} }},
		{"JoinSeeds", func(c *Settings) { c.Join, c.Observer, c.JoinSeeds = true, true, []string{"srv:"} }},
		{"JoinSeeds", func(c *Settings) { c.Join, c.Observer, c.JoinSeeds = true, true, []string{"srv:host:1"} }},
		{"RaftAddress", func(c *Settings) {
			c.RaftAddress, c.InitialCluster = "10.1.2.3:2380", map[string]string{c.Name: "10.1.2.3:2380"}
		}},
		{"AdminAddress", func(c *Settings) { c.AdminAddress = "10.1.2.3:2381" }},
		{"AdminAddress", func(c *Settings) { c.AdminAddress = "no port" }},
		{"InitialCluster", func(c *Settings) { c.InitialCluster[""] = "127.0.0.1:9" }},
		{"RequestTimeout", func(c *Settings) { c.RequestTimeout = -time.Second }},
		{"MaxTxnOps", func(c *Settings) { c.MaxTxnOps = -1 }},
		{"Shards", func(c *Settings) { c.Shards = MaxShards + 1 }},
	}
	for _, tc := range cases {
		c := Settings{DataDir: "/d"}.WithDefaults()
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, errdefs.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig naming it", tc.field, err)
		}
	}
	insecure := Settings{DataDir: "/d", InsecurePeers: true, RaftAddress: "10.1.2.3:2380", AdminAddress: "10.1.2.3:2381"}.WithDefaults()
	if err := insecure.Validate(); err != nil {
		t.Errorf("InsecurePeers allows plaintext beyond loopback: %v", err)
	}
}
