package etcdv3

import (
	"errors"
	"fmt"
	"strings"
	"testing"

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
