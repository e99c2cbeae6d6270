package coord

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"
	"weak"
)

func TestZZLeak(t *testing.T) {
	dir := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	n, err := Open(context.Background(), Config{Name: "a", DataDir: dir, RaftAddress: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2000; i++ {
		if _, err := n.Put(ctx, fmt.Sprintf("/k/%d", i), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	wn, wnh, ws, wm, wh := weak.Make(n), weak.Make(n.nh), weak.Make(n.shards[0]), weak.Make(n.shards[0].machine.Load()), weak.Make(n.shards[0].hub)
	wk := weak.Make(n.shards[0].keeper)
	n.Close()
	n = nil
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	t.Logf("alive: node %v nodehost %v shard %v machine %v hub %v keeper %v", wn.Value() != nil, wnh.Value() != nil, ws.Value() != nil, wm.Value() != nil, wh.Value() != nil, wk.Value() != nil)
}
