package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/internal/proctest"
)

// TestEtcdctlAgainstMemberProcesses starts three member processes, as
// examples/cluster/three.sh does, and runs the etcd guide's
// "etcdctl member list -w table" against one of them; a key written with
// etcdctl is read back through the JSON API on another member's same
// client URL.
func TestEtcdctlAgainstMemberProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the member program and etcdctl")
	}
	dir := t.TempDir()
	bin := proctest.Build(t, dir, proctest.MemberProgram)[0]
	ctl := filepath.Join(dir, "etcdctl")
	build := exec.Command("go", "build", "-o", ctl, "go.etcd.io/etcd/etcdctl/v3")
	build.Dir = filepath.Join("..", "..", "etcdv3", "testdata", "etcdctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building etcdctl: %v\n%s", err, out)
	}
	ms := proctest.Founders(t, bin, dir, "etcd-api-test", 3, "--heartbeat-interval", "50", "--election-timeout", "750")
	for _, m := range ms {
		m.Start(t)
	}
	etcdctl := func(endpoint string, args ...string) (string, error) {
		out, err := exec.Command(ctl, append([]string{"--endpoints=http://" + endpoint, "--command-timeout=5s"}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, m := range ms {
		m.Eventually(t, 60*time.Second, 200*time.Millisecond, "etcdctl endpoint health", func() error {
			_, err := etcdctl(m.Client, "endpoint", "health")
			return err
		})
	}
	table, err := etcdctl(ms[0].Client, "member", "list", "-w", "table")
	if err != nil {
		t.Fatalf("member list: %v\n%s", err, table)
	}
	t.Logf("etcdctl --endpoints=http://%s member list -w table:\n%s", ms[0].Client, table)
	for _, m := range ms {
		if !regexp.MustCompile(`started [|│] +` + m.Name + ` [|│] http://` + regexp.QuoteMeta(m.Peer) + ` `).MatchString(table) {
			t.Fatalf("member %s missing from the table", m.Name)
		}
	}
	if !strings.Contains(table, "http://"+ms[0].Client) {
		t.Fatalf("the answering member's client URL is missing from the table")
	}
	if out, err := etcdctl(ms[0].Client, "put", "greeting", "hello"); err != nil || out != "OK\n" {
		t.Fatalf("put: %v %q", err, out)
	}
	// The same client URL of another member speaks the JSON API too.
	resp, err := http.Post("http://"+ms[1].Client+"/v1/kv/range", "application/json",
		strings.NewReader(`{"key":"`+base64.StdEncoding.EncodeToString([]byte("greeting"))+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		KVs []struct {
			Value []byte `json:"value"`
		} `json:"kvs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.KVs) != 1 || string(r.KVs[0].Value) != "hello" {
		t.Fatalf("JSON API read of an etcdctl write: %+v %v (status %d)", r, err, resp.StatusCode)
	}
}
