package peer

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/coordkit/coordkit/internal/proctest"
)

// A member process started the way single.sh starts one (plaintext Raft on
// loopback, the defaults) is sent what an attacker on the same host could
// send to its Raft and admission ports. It keeps serving throughout, loses
// nothing it acknowledged, and admits no one.
func TestMemberProcessSurvivesCraftedPeerTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a member process")
	}
	dir := t.TempDir()
	bin := proctest.Build(t, dir, "github.com/coordkit/coordkit/cmd/coordkit")[0]
	p := proctest.NewMember(t, bin, dir, "default")
	raft, admin := p.Peer, proctest.FreeAddr(t)
	p.Args = []string{"--data-dir", p.DataDir, "--listen-peer-urls", "http://" + raft, "--listen-client-urls", "http://" + p.Client,
		"--listen-admin-urls", admin}
	p.Start(t)
	api := "http://" + p.Client
	post := func(path string, body any, out any) error {
		b, _ := json.Marshal(body)
		resp, err := http.Post(api+path, "application/json", bytes.NewReader(b))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %s %s", path, resp.Status, msg)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		return nil
	}
	put := func(k string) error {
		return post("/v1/kv/put", map[string][]byte{"key": []byte(k), "value": []byte("v")}, nil)
	}
	p.Eventually(t, time.Minute, 50*time.Millisecond, "the first put", func() error { return put("/acked/0") })
	acked := 1
	check := func(what string) {
		t.Helper()
		if err := put(fmt.Sprintf("/acked/%d", acked)); err != nil {
			t.Fatalf("after %s: %v (member running: %v)", what, err, p.Running())
		}
		acked++
		var r struct{ Count int64 }
		if err := post("/v1/kv/range", map[string]any{"key": []byte("/acked/"), "prefix": true, "count_only": true}, &r); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
		if r.Count != int64(acked) {
			t.Fatalf("after %s: %d keys, want the %d acknowledged", what, r.Count, acked)
		}
	}
	send := func(b []byte) net.Conn {
		c, err := net.Dial("tcp", raft)
		if err != nil {
			t.Fatalf("the Raft port: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write(b)
		return c
	}

	send(dragonboatFrame())
	check("dragonboat's 20-byte frame")
	junk := make([]byte, 1<<16)
	rand.Read(junk)
	send(junk)
	check("64 KiB of random bytes")
	h := hello{kind: kindMessages, deployment: 1}
	slow := send(h.encode()[:10]) // a slow-loris, left open
	check("a sender stuck in its greeting")

	// A peer with the wrong secret, of the right cluster, is refused at
	// the handshake: the member's reply does not verify with its guess,
	// and its own proof closes the connection.
	deployment := deploymentOf("coordkit-cluster")
	guess := []byte("a guess at the cluster secret")
	evil := hello{kind: kindMessages, deployment: deployment}
	rand.Read(evil.nonce[:])
	eb := evil.encode()
	c := send(eb)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, replySize)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatalf("no reply to a hello of the right cluster: %v", err)
	}
	if _, err := checkReply(guess, eb, reply); err == nil {
		t.Fatal("the member's reply verified with a guessed secret")
	}
	c.Write(proofOf(guess, labelClient, eb, reply[len(magic):len(magic)+nonceSize]))
	if !closedByPeer(c) {
		t.Fatal("a proof made with a guessed secret did not close the connection")
	}
	check("a peer with the wrong secret")

	// A peer with the right secret (read from the data directory, as an
	// operator would) but malformed frames is cut off; the member serves on.
	secret, err := os.ReadFile(filepath.Join(p.DataDir, "cluster-secret"))
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.TrimSpace(secret)
	proven := func() net.Conn {
		t.Helper()
		h := hello{kind: kindMessages, deployment: deployment}
		rand.Read(h.nonce[:])
		hb := h.encode()
		c := send(hb)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		reply := make([]byte, replySize)
		if _, err := io.ReadFull(c, reply); err != nil {
			t.Fatalf("handshake with the right secret: %v", err)
		}
		proof, err := checkReply(key, hb, reply)
		if err != nil {
			t.Fatalf("handshake with the right secret: %v", err)
		}
		c.Write(proof)
		return c
	}
	huge := make([]byte, headerSize)
	huge[0] = frameBatch
	binary.BigEndian.PutUint32(huge[1:], 1<<32-1)
	c = proven()
	c.Write(huge)
	if !closedByPeer(c) {
		t.Fatal("a frame declaring 4 GiB did not close the connection")
	}
	check("a frame declaring 4 GiB")
	bad := make([]byte, headerSize)
	bad[0] = 200
	binary.BigEndian.PutUint32(bad[1:], 8)
	c = proven()
	c.Write(bad)
	if !closedByPeer(c) {
		t.Fatal("a bad frame type did not close the connection")
	}
	check("a bad frame type")
	body, _ := (&pb.MessageBatch{DeploymentId: deployment}).Marshal()
	payload := append(body, make([]byte, 64)...)
	fr := make([]byte, headerSize)
	putHeader(fr, frameBatch, payload)
	c = proven()
	c.Write(append(fr, payload[:len(payload)/2]...))
	check("a truncated frame")
	slow.Close()

	// The admission port: a process that knows the token but not the
	// secret asks to be admitted.
	req, _ := json.Marshal(map[string]string{"token": "coordkit-cluster", "name": "evil", "address": proctest.FreeAddr(t)})
	resp, err := http.Post("http://"+admin+"/coordkit/v1/admit", "application/json", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admission without proof: %s, want 401", resp.Status)
	}
	mresp, err := http.Get(api + "/v1/members")
	if err != nil {
		t.Fatal(err)
	}
	members, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if strings.Contains(string(members), "evil") {
		t.Fatalf("admitted: %s", members)
	}
	check("an admission request without proof")

	// Every refusal was logged and counted.
	mr, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mr.Body)
	mr.Body.Close()
	for _, want := range []string{"coordkit_transport_bad_handshakes_total", "coordkit_transport_bad_frames_total"} {
		if v := metricValue(string(metrics), want); v < 2 {
			t.Errorf("%s = %v, want at least 2", want, v)
		}
	}
	logs, _ := p.Tail(200)
	if !strings.Contains(strings.Join(logs, "\n"), "refused a connection") {
		t.Errorf("no refusal logged; last lines:\n%s", strings.Join(logs, "\n"))
	}
	if !p.Running() {
		t.Fatal("the member exited")
	}
}

// deploymentOf is the deployment ID coord derives from a cluster token
// (FNV-64a), which a handshake must name.
func deploymentOf(token string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(token))
	return h.Sum64()
}

// metricValue returns the value of an unlabelled series in Prometheus text.
func metricValue(text, name string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			var v float64
			fmt.Sscan(rest[strings.LastIndex(rest, " ")+1:], &v)
			return v
		}
	}
	return -1
}
