package etcdv3

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
)

// TestQuotaThroughTheEtcdAPI: past the quota clientv3 gets etcd's "database
// space exceeded", alarm list shows NOSPACE (clientv3 and etcdctl), and
// after delete and compaction, a disarm lets puts in again.
func TestQuotaThroughTheEtcdAPI(t *testing.T) {
	c := serve(t, 1, coordtest.WithConfig(func(cfg *coord.Config) { cfg.MaxStoreBytes, cfg.HistoryRetention = 16<<10, -1 }))
	ctx := ctxT(t)
	cli := client(t, c.endpoints...)
	value := strings.Repeat("v", 1024)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = cli.Put(ctx, fmt.Sprintf("/q/%d", i), value)
	}
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("puts past the quota ended with %v, want ErrNoSpace", err)
	}
	al, err := cli.AlarmList(ctx)
	if err != nil || len(al.Alarms) != 1 || al.Alarms[0].Alarm != pb.AlarmType_NOSPACE || al.Alarms[0].MemberID != c.Node(0).ID() {
		t.Fatalf("alarm list: %+v %v", al, err)
	}
	if out := c.ctl(t, "", "alarm", "list"); !strings.Contains(out, "alarm:NOSPACE") {
		t.Fatalf("etcdctl alarm list: %q", out)
	}
	st, err := cli.Status(ctx, c.endpoints[0])
	if err != nil || st.DbSize < 16<<10 || st.DbSizeQuota != 16<<10 || len(st.Errors) != 1 {
		t.Fatalf("status under the alarm: %+v %v", st, err)
	}
	d, err := cli.Delete(ctx, "/q/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, d.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if out := c.ctl(t, "", "alarm", "disarm"); !strings.Contains(out, "alarm:NOSPACE") {
		t.Fatalf("etcdctl alarm disarm: %q", out)
	}
	if al, err := cli.AlarmList(ctx); err != nil || len(al.Alarms) != 0 {
		t.Fatalf("alarm list after the disarm: %+v %v", al, err)
	}
	if _, err := cli.Put(ctx, "/q/again", "x"); err != nil {
		t.Fatalf("put after the disarm: %v", err)
	}
}

// TestCorruptAlarmThroughTheEtcdAPI: with one member's copy diverged and a
// check run, alarm list shows CORRUPT with that member's ID (clientv3 and
// etcdctl), a put fails with etcd's "corrupt cluster", disarming NOSPACE
// leaves it, and once the copy is repaired, disarming CORRUPT lets puts in.
func TestCorruptAlarmThroughTheEtcdAPI(t *testing.T) {
	c := serve(t, 3, coordtest.WithConfig(func(cfg *coord.Config) { cfg.HashCheckInterval = -1 }))
	ctx := ctxT(t)
	cli := client(t, c.endpoints...)
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		coordtest.Eventually(t, 5*time.Second, func() bool { return coordtest.Count(t, c.Node(i), "/k") == 1 }, "member %d behind", i)
	}
	c.Diverge(2, "/k", []byte("w"))
	if _, err := c.Node(0).CheckHash(ctx); err != nil {
		t.Fatal(err)
	}
	al, err := cli.AlarmList(ctx)
	if err != nil || len(al.Alarms) != 1 || al.Alarms[0].Alarm != pb.AlarmType_CORRUPT || al.Alarms[0].MemberID != c.Node(2).ID() {
		t.Fatalf("alarm list: %+v %v", al, err)
	}
	if out := c.ctl(t, "", "alarm", "list"); !strings.Contains(out, fmt.Sprintf("memberID:%d  alarm:CORRUPT", c.Node(2).ID())) {
		t.Fatalf("etcdctl alarm list: %q", out)
	}
	if _, err := cli.Put(ctx, "/k", "x"); !errors.Is(err, rpctypes.ErrCorrupt) {
		t.Fatalf("a put under the CORRUPT alarm: %v", err)
	}
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	if al, err := cli.AlarmList(ctx); err != nil || len(al.Alarms) != 1 {
		t.Fatalf("disarming NOSPACE touched CORRUPT: %+v %v", al, err)
	}
	c.Diverge(2, "/k", []byte("v"))
	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: c.Node(2).ID(), Alarm: pb.AlarmType_CORRUPT}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/k", "x"); err != nil {
		t.Fatalf("a put after the disarm: %v", err)
	}
}
