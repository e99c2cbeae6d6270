// Package boot decides who a member is when it opens: the member its
// DataDir holds (checked, as are dragonboat's files), or a new one, a
// founder, a joiner added by AddMember, or an observer admitted by its
// JoinSeeds; and the cluster key its peers prove they hold.
package boot

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/admit"
	"github.com/coordkit/coordkit/coord/internal/errdefs"
	"github.com/coordkit/coordkit/coord/internal/meta"
	"github.com/coordkit/coordkit/coord/internal/raftnode"
)

// Config is what Resolve reads of the member's Config, after defaults.
type Config struct {
	Name, DataDir, RaftAddress, ClusterToken string
	InitialCluster                           map[string]string
	Join, Observer                           bool
	JoinSeeds                                []string
	DNSResolver                              *net.Resolver // for srv: seeds; nil: the default
	// Shards is the count asked for (0: any; DefaultShards for a new
	// cluster).
	Shards, DefaultShards int
	ClusterSecret         string
	TLS                   *raftnode.TLSFiles
	RequestTimeout        time.Duration
	FS                    vfs.FS
	Logger                *slog.Logger
	// GivenName, GivenToken and GivenAddress are the values the caller set
	// (empty: not set), which a restart checks against DataDir.
	GivenName, GivenToken, GivenAddress string
}

// Resolve returns the member's metadata and cluster key: read from DataDir
// (checked, with dragonboat's files, by meta.CheckRaftDir) and checked
// against the values given, or, for a new DataDir, made from c (unsaved:
// Version 0), after asking JoinSeeds for admission when c says so. c gets
// the shard count, and a restarted member's name, token and address.
// Errors: ErrInvalidConfig naming the field, ErrCorrupt naming a file,
// those of the admission.
func Resolve(ctx context.Context, c *Config) (*meta.Member, []byte, error) {
	mf, err := meta.Load(c.FS, c.DataDir)
	if err != nil {
		return nil, nil, err
	}
	if mf != nil {
		if err := meta.CheckRaftDir(c.FS, filepath.Join(c.DataDir, "raft")); err != nil {
			return nil, nil, err
		}
	}
	alone, token := !c.Join && len(c.InitialCluster) == 1, c.ClusterToken
	if mf != nil {
		alone, token = !mf.Joined && len(mf.Members) == 1, mf.ClusterToken
	}
	key, err := meta.ClusterKey(meta.KeyConfig{Secret: c.ClusterSecret, DataDir: c.DataDir, FS: c.FS, TLS: c.TLS != nil, Logger: c.Logger},
		token, alone)
	if err != nil {
		return nil, nil, err
	}
	if mf != nil && mf.Seeded && len(c.JoinSeeds) > 0 {
		if mf, err = admit.Rejoin(ctx, c.admitClient(), key, mf); err != nil {
			return nil, nil, err
		}
	}
	if mf == nil {
		mf, err = c.newMember(ctx, key)
	} else {
		err = c.resume(mf)
	}
	if err != nil {
		return nil, nil, err
	}
	c.Shards = mf.Shards
	return mf, key, nil
}

// newMember is the metadata of a new member: a founder's replica ID from
// InitialCluster, a joiner's from its name and address, or the one the
// seeds that admitted it gave.
func (c *Config) newMember(ctx context.Context, key []byte) (*meta.Member, error) {
	var admitted *admit.Response
	if c.Join && len(c.JoinSeeds) > 0 {
		ac := c.admitClient()
		var err error
		if admitted, err = admit.Ask(ctx, &ac, key, 0, true); err != nil {
			return nil, err
		}
		if c.Shards != 0 && c.Shards != admitted.Shards {
			return nil, errdefs.Config("Shards", "%d, but the cluster has %d", c.Shards, admitted.Shards)
		}
		c.Shards = admitted.Shards
	}
	shards := c.Shards
	if shards == 0 {
		shards = c.DefaultShards
	}
	members := meta.Founders(c.InitialCluster)
	id := members[c.Name].ReplicaID
	if c.Join {
		id = meta.JoinedReplicaID(c.ClusterToken, c.Name, c.RaftAddress)
		if admitted != nil {
			id, _ = strconv.ParseUint(admitted.ReplicaID, 10, 64)
			members = map[string]meta.Peer{}
		}
		members[c.Name] = meta.Peer{ReplicaID: id, Address: c.RaftAddress}
	}
	return &meta.Member{
		Name: c.Name, ReplicaID: id, Joined: c.Join, Observer: c.Observer, Seeded: admitted != nil,
		ClusterToken: c.ClusterToken, Shards: shards, RaftAddress: c.RaftAddress, Members: members,
		LogDBShards: 1,
	}, nil
}

// resume checks the values given against the metadata of the member
// DataDir holds, and takes the member's name, token and address
// from it; a file of an older format is rewritten in the current one.
func (c *Config) resume(mf *meta.Member) error {
	if c.GivenName != "" && c.GivenName != mf.Name {
		return errdefs.Config("Name", "%q, but DataDir holds member %q", c.GivenName, mf.Name)
	}
	if c.Shards != 0 && c.Shards != mf.Shards {
		return errdefs.Config("Shards", "%d, but the cluster was created with %d", c.Shards, mf.Shards)
	}
	if c.GivenToken != "" && c.GivenToken != mf.ClusterToken {
		return errdefs.Config("ClusterToken", "%q, but DataDir belongs to cluster %q", c.GivenToken, mf.ClusterToken)
	}
	if c.GivenAddress != "" && c.GivenAddress != mf.RaftAddress {
		return errdefs.Config("RaftAddress", "%q, but this member was created with %q", c.GivenAddress, mf.RaftAddress)
	}
	c.Name, c.ClusterToken, c.RaftAddress = mf.Name, mf.ClusterToken, mf.RaftAddress
	if mf.Version < meta.Version { // gains its checksum
		if err := meta.Save(c.FS, c.DataDir, mf); err != nil {
			return fmt.Errorf("coord: DataDir: %w", err)
		}
	}
	return nil
}

// admitClient is what Open needs to ask JoinSeeds for admission.
func (c *Config) admitClient() admit.ClientConfig {
	return admit.ClientConfig{Seeds: c.JoinSeeds, Resolver: c.DNSResolver, TLS: c.TLS, Token: c.ClusterToken, Name: c.Name,
		Address: c.RaftAddress, RequestTimeout: c.RequestTimeout, Logger: c.Logger, DataDir: c.DataDir, FS: c.FS}
}
