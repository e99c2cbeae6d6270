package boot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/meta"
)

func config(fs vfs.FS, name string) *Config {
	return &Config{Name: name, DataDir: "/data/" + name, RaftAddress: "127.0.0.1:1" + name[1:], ClusterToken: "t",
		InitialCluster: map[string]string{"m1": "127.0.0.1:11", "m2": "127.0.0.1:12", "m3": "127.0.0.1:13"},
		DefaultShards:  1, ClusterSecret: "0123456789abcdef", FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// A founder's replica ID comes from the sorted InitialCluster, a joiner's
// from its name and address; a restart takes the member file's identity
// and refuses a Config that contradicts it, naming the field.
func TestResolve(t *testing.T) {
	fs := vfs.NewMem()
	ctx := context.Background()
	c := config(fs, "m2")
	if err := fs.MkdirAll(c.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mf, key, err := Resolve(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if mf.Version != 0 || mf.ReplicaID != 2 || mf.Shards != 1 || len(mf.Members) != 3 || string(key) != c.ClusterSecret {
		t.Fatalf("new founder: %+v, key %q", mf, key)
	}
	j := config(fs, "m4")
	j.Join, j.RaftAddress = true, "127.0.0.1:14"
	jm, _, err := Resolve(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if jm.ReplicaID != meta.JoinedReplicaID("t", "m4", "127.0.0.1:14") || !jm.Joined {
		t.Fatalf("joiner: %+v", jm)
	}
	// Restarts.
	if err := meta.Save(fs, c.DataDir, mf); err != nil {
		t.Fatal(err)
	}
	r := config(fs, "m2")
	r.Name, r.RaftAddress, r.ClusterToken = "default", "127.0.0.1:2380", "coordkit-cluster" // defaults, as not given
	got, _, err := Resolve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReplicaID != 2 || r.Name != "m2" || r.RaftAddress != "127.0.0.1:12" || r.ClusterToken != "t" || r.Shards != 1 {
		t.Fatalf("restart: %+v, config now %s %s %s %d", got, r.Name, r.RaftAddress, r.ClusterToken, r.Shards)
	}
	for field, set := range map[string]func(*Config){
		"Name":         func(c *Config) { c.GivenName = "other" },
		"ClusterToken": func(c *Config) { c.GivenToken = "other" },
		"RaftAddress":  func(c *Config) { c.GivenAddress = "127.0.0.1:99" },
		"Shards":       func(c *Config) { c.Shards = 4 },
	} {
		b := config(fs, "m2")
		set(b)
		if _, _, err := Resolve(ctx, b); !errors.Is(err, errdefs.ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("restart with another %s: %v, want ErrInvalidConfig naming it", field, err)
		}
	}
	// A member that is not alone has no secret to generate.
	n := config(fs, "m3")
	n.ClusterSecret = ""
	if _, _, err := Resolve(ctx, n); !errors.Is(err, errdefs.ErrInvalidConfig) || !strings.Contains(err.Error(), "ClusterSecret") {
		t.Errorf("a founder of three without a secret: %v", err)
	}
}
