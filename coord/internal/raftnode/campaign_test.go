package raftnode

import (
	"testing"

	"github.com/lni/dragonboat/v4"
)

func TestCampaignNowOnlyForTheFinalSoleVoter(t *testing.T) {
	const self, other = 1, 2
	alone := map[uint64]string{self: "a"}
	cases := []struct {
		name          string
		si            dragonboat.ShardInfo
		want          uint64
		kick, settled bool
	}{
		{"nothing applied yet", dragonboat.ShardInfo{Pending: true}, 1, false, false},
		{"new sole voter", dragonboat.ShardInfo{Replicas: alone, ConfigChangeIndex: 1}, 1, true, false},
		// A 3-member shard applies its 3 founding entries one at a time.
		{"first of 3 founders applied", dragonboat.ShardInfo{Replicas: alone, ConfigChangeIndex: 1}, 3, false, false},
		{"restarted, changes left to apply", dragonboat.ShardInfo{Replicas: alone, ConfigChangeIndex: 7}, 9, false, false},
		{"restarted sole voter", dragonboat.ShardInfo{Replicas: alone, ConfigChangeIndex: 9}, 9, true, false},
		{"two voters", dragonboat.ShardInfo{Replicas: map[uint64]string{self: "a", other: "b"}, ConfigChangeIndex: 3}, 3, false, true},
		{"observer of a 1-voter shard", dragonboat.ShardInfo{Replicas: map[uint64]string{other: "b"}, IsNonVoting: true, ConfigChangeIndex: 4}, 4, false, true},
		{"removed", dragonboat.ShardInfo{Replicas: map[uint64]string{other: "b"}, ConfigChangeIndex: 4}, 4, false, true},
		{"leader elected", dragonboat.ShardInfo{Replicas: alone, ConfigChangeIndex: 1, LeaderID: self}, 1, false, true},
		{"leader elected, changes left to apply", dragonboat.ShardInfo{Pending: true, LeaderID: other}, 3, false, true},
	}
	for _, tc := range cases {
		kick, settled := campaignNow(tc.si, tc.want, self)
		if kick != tc.kick || settled != tc.settled {
			t.Errorf("%s: kick %v settled %v, want %v %v", tc.name, kick, settled, tc.kick, tc.settled)
		}
	}
}
