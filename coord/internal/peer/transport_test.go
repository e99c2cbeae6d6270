package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"

	"github.com/coordkit/coordkit/internal/freeport"
	"github.com/coordkit/coordkit/internal/proctest"
)

const testDeployment = 77

var testKey = []byte("peer-test-cluster-secret")

// sink collects what a transport delivers.
type sink struct {
	mu      sync.Mutex
	batches []pb.MessageBatch
	chunks  []pb.Chunk
}

func (s *sink) onBatch(b pb.MessageBatch) {
	s.mu.Lock()
	s.batches = append(s.batches, b)
	s.mu.Unlock()
}

func (s *sink) onChunk(c pb.Chunk) bool {
	s.mu.Lock()
	s.chunks = append(s.chunks, c)
	s.mu.Unlock()
	return true
}

func (s *sink) messages() []pb.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ms []pb.Message
	for _, b := range s.batches {
		ms = append(ms, b.Requests...)
	}
	return ms
}

// start starts a transport on a free loopback port.
func start(t *testing.T, key []byte, maxRequest int) (*Transport, *sink) {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{}
	f := NewFactory(Options{Key: key, MaxRequestBytes: maxRequest, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	nhc := config.NodeHostConfig{RaftAddress: addr, DeploymentID: testDeployment}
	tr := f.Create(nhc, s.onBatch, s.onChunk).(*Transport)
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, s
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	proctest.Eventually(t, 10*time.Second, 5*time.Millisecond, what, proctest.Holds(f))
}

func batchOf(msgs ...pb.Message) pb.MessageBatch {
	return pb.MessageBatch{DeploymentId: testDeployment, SourceAddress: "client:1", BinVer: raftio.TransportBinVersion, Requests: msgs}
}

// sendOne proves the transport still serves: a message sent through a
// fresh connection arrives.
func sendOne(t *testing.T, from, to *Transport, s *sink, term uint64) {
	t.Helper()
	c, err := from.GetConnection(context.Background(), to.nhc.RaftAddress)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	if err := c.SendMessageBatch(batchOf(pb.Message{Type: pb.Heartbeat, ShardID: 1, To: 2, From: 1, Term: term})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", func() bool {
		for _, m := range s.messages() {
			if m.Term == term {
				return true
			}
		}
		return false
	})
}

func TestMessagesArriveInOrderAndBatched(t *testing.T) {
	a, _ := start(t, testKey, 1<<20)
	b, sb := start(t, testKey, 1<<20)
	if _, ok := b.Heard("client:1"); ok {
		t.Fatal("Heard reports a peer that sent nothing yet")
	}
	before := time.Now()
	c, err := a.GetConnection(context.Background(), b.nhc.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 500
	for i := 1; i <= n; i++ {
		if err := c.SendMessageBatch(batchOf(pb.Message{Type: pb.Heartbeat, ShardID: 1, To: 2, From: 1, Term: uint64(i)})); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message", func() bool { return len(sb.messages()) == n })
	for i, m := range sb.messages() {
		if m.Term != uint64(i+1) {
			t.Fatalf("message %d has term %d: out of order", i, m.Term)
		}
	}
	st := a.Stats()
	if len(st.Peers) != 1 || st.Peers[0].SentMessages != n || st.Peers[0].SentBatches != n {
		t.Fatalf("sender stats %+v, want %d messages in %d frames", st, n, n)
	}
	if w := st.Peers[0].Writes; w == 0 || w > n {
		t.Fatalf("%d writes for %d frames", w, n)
	}
	if q := st.Peers[0].QueueBytes; q != 0 {
		t.Fatalf("queue holds %d bytes after everything was sent", q)
	}
	rs := b.Stats()
	if len(rs.Peers) != 1 || rs.Peers[0].Address != "client:1" || rs.Peers[0].ReceivedMessages != n {
		t.Fatalf("receiver stats %+v", rs)
	}
	if at, ok := b.Heard("client:1"); !ok || at.Before(before) || at.After(time.Now()) || !at.Equal(rs.Peers[0].LastReceived) {
		t.Fatalf("Heard(client:1) = %v, %v; stats say %v; sent after %v", at, ok, rs.Peers[0].LastReceived, before)
	}
	if _, ok := a.Heard("client:1"); ok {
		t.Fatal("the sender reports hearing from the peer it only sent to")
	}
}

func TestLargeReplicateIsSplitIntoFramesWithinTheLimit(t *testing.T) {
	a, _ := start(t, testKey, 64<<10)
	b, sb := start(t, testKey, 64<<10)
	c, err := a.GetConnection(context.Background(), b.nhc.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// 40 entries of 60 KiB: 2.4 MiB in one message, over the 1 MiB a
	// frame aims at; each entry alone fits.
	var ents []pb.Entry
	for i := uint64(0); i < 40; i++ {
		ents = append(ents, pb.Entry{Index: 11 + i, Term: 3, Cmd: bytes.Repeat([]byte{byte(i)}, 60<<10)})
	}
	m := pb.Message{Type: pb.Replicate, ShardID: 1, To: 2, From: 1, Term: 3, LogIndex: 10, LogTerm: 2, Commit: 9, Entries: ents}
	if err := c.SendMessageBatch(batchOf(m)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every entry", func() bool {
		n := 0
		for _, m := range sb.messages() {
			n += len(m.Entries)
		}
		return n == len(ents)
	})
	parts := sb.messages()
	if len(parts) < 3 {
		t.Fatalf("%d parts; want the message split", len(parts))
	}
	prevIndex, prevTerm := uint64(10), uint64(2)
	for _, p := range parts {
		if p.LogIndex != prevIndex || p.LogTerm != prevTerm || p.Commit != 9 || p.Term != 3 {
			t.Fatalf("part (LogIndex %d, LogTerm %d, Commit %d) after (%d, %d)", p.LogIndex, p.LogTerm, p.Commit, prevIndex, prevTerm)
		}
		last := p.Entries[len(p.Entries)-1]
		prevIndex, prevTerm = last.Index, last.Term
	}
	if prevIndex != 50 {
		t.Fatalf("last entry %d, want 50", prevIndex)
	}
}

func TestSnapshotChunksArriveAndStreamsAreBounded(t *testing.T) {
	a, _ := start(t, testKey, 1<<20)
	b, sb := start(t, testKey, 1<<20)
	ctx := context.Background()
	var conns []raftio.ISnapshotConnection
	for i := 0; i < a.opts.SnapshotStreams; i++ {
		sc, err := a.GetSnapshotConnection(ctx, b.nhc.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, sc)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := a.GetSnapshotConnection(short, b.nhc.RaftAddress); err == nil {
		t.Fatal("a snapshot stream beyond the bound was opened")
	}
	data := bytes.Repeat([]byte("s"), 1<<20)
	if err := conns[0].SendChunk(pb.Chunk{ShardID: 1, ReplicaID: 2, From: 1, ChunkCount: 1, Data: data, DeploymentId: testDeployment}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the chunk", func() bool {
		sb.mu.Lock()
		defer sb.mu.Unlock()
		return len(sb.chunks) == 1 && bytes.Equal(sb.chunks[0].Data, data)
	})
	conns[0].Close()
	sc, err := a.GetSnapshotConnection(ctx, b.nhc.RaftAddress)
	if err != nil {
		t.Fatalf("no stream after one closed: %v", err)
	}
	sc.Close()
	conns[1].Close()
}

func TestWrongSecretIsRefusedBothWays(t *testing.T) {
	a, _ := start(t, testKey, 1<<20)
	b, sb := start(t, testKey, 1<<20)
	evil, _ := start(t, []byte("not-the-cluster-secret"), 1<<20)
	if _, err := evil.GetConnection(context.Background(), b.nhc.RaftAddress); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("a peer with another secret connected: %v", err)
	}
	waitFor(t, "the refusal to be counted", func() bool { return b.Stats().BadHandshakes == 1 })
	// Nor does a member send to a listener without the secret.
	if _, err := a.GetConnection(context.Background(), evil.nhc.RaftAddress); err == nil {
		t.Fatal("connected to a listener that does not hold the secret")
	}
	if len(sb.messages()) != 0 {
		t.Fatal("something was delivered")
	}
	sendOne(t, a, b, sb, 1)
}

// handshaken opens a raw connection to tr that has passed the handshake,
// for sending crafted frames.
func handshaken(t *testing.T, tr *Transport, kind byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tr.nhc.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h := hello{kind: kind, deployment: testDeployment}
	rand.Read(h.nonce[:])
	hb := h.encode()
	c.Write(hb)
	reply := make([]byte, replySize)
	if _, err := io.ReadFull(c, reply); err != nil {
		t.Fatal(err)
	}
	proof, err := checkReply(testKey, hb, reply)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(proof)
	return c
}

// closedByPeer reports whether the server closed c within a few seconds.
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF || (err != nil && !isTimeout(err))
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// dragonboatFrame is the 20 bytes that killed a member on dragonboat's own
// transport: its magic number, a header with a valid checksum, and a
// payload size of 2^40.
func dragonboatFrame() []byte {
	b := []byte{0xAE, 0x7D}
	h := make([]byte, 18)
	binary.BigEndian.PutUint16(h, 100) // raftType
	binary.BigEndian.PutUint64(h[2:], 1<<40)
	binary.BigEndian.PutUint32(h[14:], 0)
	binary.BigEndian.PutUint32(h[10:], crc32.ChecksumIEEE(h))
	return append(b, h...)
}

func TestCraftedInputIsRefusedAndTheTransportServesOn(t *testing.T) {
	a, _ := start(t, testKey, 1<<20)
	b, sb := start(t, testKey, 1<<20)
	raw := func(p []byte) net.Conn {
		c, err := net.Dial("tcp", b.nhc.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write(p)
		return c
	}
	random := make([]byte, 4096)
	rand.Read(random)
	huge := make([]byte, headerSize)
	huge[0] = frameBatch
	binary.BigEndian.PutUint32(huge[1:], 1<<31)
	badType := make([]byte, headerSize)
	badType[0] = 9
	binary.BigEndian.PutUint32(badType[1:], 10)
	chunkOnMessages := make([]byte, headerSize)
	chunkOnMessages[0] = frameChunk
	binary.BigEndian.PutUint32(chunkOnMessages[1:], 10)
	garbage := bytes.Repeat([]byte{0xff}, 64)
	badPayload := make([]byte, headerSize, headerSize+len(garbage))
	putHeader(badPayload, frameBatch, garbage)
	badPayload = append(badPayload, garbage...)
	badCRC := append([]byte(nil), badPayload...)
	badCRC[len(badCRC)-1] ^= 1

	cases := []struct {
		name string
		conn func() net.Conn
	}{
		{"dragonboat's 20-byte frame", func() net.Conn { return raw(dragonboatFrame()) }},
		{"random bytes", func() net.Conn { return raw(random) }},
		{"a hello of another version", func() net.Conn {
			h := hello{kind: kindMessages, deployment: testDeployment}
			hb := h.encode()
			hb[4] = 9
			return raw(hb)
		}},
		{"a hello of another cluster", func() net.Conn {
			h := hello{kind: kindMessages, deployment: testDeployment + 1}
			return raw(h.encode())
		}},
		{"a forged proof", func() net.Conn {
			h := hello{kind: kindMessages, deployment: testDeployment}
			c := raw(h.encode())
			io.ReadFull(c, make([]byte, replySize))
			c.Write(make([]byte, macSize))
			return c
		}},
		{"a frame declaring 2 GiB", func() net.Conn {
			c := handshaken(t, b, kindMessages)
			c.Write(huge)
			return c
		}},
		{"a bad frame type", func() net.Conn {
			c := handshaken(t, b, kindMessages)
			c.Write(badType)
			return c
		}},
		{"a chunk on a messages connection", func() net.Conn {
			c := handshaken(t, b, kindMessages)
			c.Write(chunkOnMessages)
			return c
		}},
		{"a payload that is not a batch", func() net.Conn {
			c := handshaken(t, b, kindMessages)
			c.Write(badPayload)
			return c
		}},
		{"a payload with a bad checksum", func() net.Conn {
			c := handshaken(t, b, kindMessages)
			c.Write(badCRC)
			return c
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c := tc.conn(); !closedByPeer(c) {
				t.Fatal("the connection stayed open")
			}
		})
	}
	st := b.Stats()
	if st.BadHandshakes < 5 || st.BadFrames < 5 {
		t.Fatalf("stats %+v: want every refusal counted", st)
	}
	if len(sb.messages()) != 0 {
		t.Fatal("a crafted frame was delivered")
	}
	sendOne(t, a, b, sb, 7)
}

func TestSlowAndTruncatedSendersAreCutOff(t *testing.T) {
	defer func(h, f time.Duration) { handshakeTimeout, frameTimeout = h, f }(handshakeTimeout, frameTimeout)
	handshakeTimeout, frameTimeout = 300*time.Millisecond, 300*time.Millisecond
	a, _ := start(t, testKey, 1<<20)
	b, sb := start(t, testKey, 1<<20)

	// A slow-loris: half a hello, then nothing.
	c, err := net.Dial("tcp", b.nhc.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := hello{kind: kindMessages, deployment: testDeployment}
	c.Write(h.encode()[:20])
	if !closedByPeer(c) {
		t.Fatal("a sender stuck in the handshake kept its connection")
	}
	// Many of them at once are refused beyond the pending bound, and the
	// transport still serves once they are gone.
	var idle []net.Conn
	for i := 0; i < maxPending+10; i++ {
		c, err := net.Dial("tcp", b.nhc.RaftAddress)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	waitFor(t, "connections over the bound to be refused", func() bool { return b.Stats().RefusedConnections >= 10 })
	for _, c := range idle {
		c.Close()
	}
	waitFor(t, "the pending handshakes to end", func() bool { return len(b.pending) == 0 })
	// A truncated frame: a header, then half its payload, then silence.
	tc := handshaken(t, b, kindMessages)
	body, _ := (&pb.MessageBatch{DeploymentId: testDeployment, BinVer: raftio.TransportBinVersion}).Marshal()
	fr := make([]byte, headerSize)
	payload := append(body, bytes.Repeat([]byte{0}, 100)...)
	putHeader(fr, frameBatch, payload)
	tc.Write(append(fr, payload[:len(payload)/2]...))
	if !closedByPeer(tc) {
		t.Fatal("a truncated frame kept its connection")
	}
	sendOne(t, a, b, sb, 9)
}

// A peer that starts listening a moment after it is dialed (an observer
// just admitted) is connected to, rather than refused: a refused
// connection would trip dragonboat's circuit breaker for half a second or
// more. One that never listens is given up on.
func TestDialWaitsForAPeerThatIsStarting(t *testing.T) {
	a, _ := start(t, testKey, 1<<20)
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := a.GetConnection(context.Background(), addr); err == nil {
		t.Fatal("connected to a port nobody listens on")
	} else if d := time.Since(t0); d < refusedRetry {
		t.Fatalf("a refused dial failed after %v, before refusedRetry (%v)", d, refusedRetry)
	}
	s := &sink{}
	b := NewFactory(Options{Key: testKey, MaxRequestBytes: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).
		Create(config.NodeHostConfig{RaftAddress: addr, DeploymentID: testDeployment}, s.onBatch, s.onChunk).(*Transport)
	t.Cleanup(func() { b.Close() })
	go func() {
		time.Sleep(refusedRetry / 4)
		if err := b.Start(); err != nil {
			t.Error(err)
		}
	}()
	c, err := a.GetConnection(context.Background(), addr)
	if err != nil {
		t.Fatalf("dialing a peer that starts listening %v later: %v", refusedRetry/4, err)
	}
	defer c.Close()
	if err := c.SendMessageBatch(batchOf(pb.Message{Type: pb.Heartbeat, ShardID: 1, To: 2, From: 1, Term: 5})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", func() bool { return len(s.messages()) == 1 })
}

func TestStartNeedsAKeyOrTLS(t *testing.T) {
	tr := NewFactory(Options{}).Create(config.NodeHostConfig{RaftAddress: "127.0.0.1:1"}, nil, nil)
	if err := tr.Start(); err == nil {
		tr.Close()
		t.Fatal("started without a key or TLS")
	}
}

func TestDragonboatSendQueueIsShort(t *testing.T) {
	if dragonboatSendQueueLen != SendQueueLength {
		t.Fatalf("dragonboat's send queue holds %d messages per peer, want %d", dragonboatSendQueueLen, SendQueueLength)
	}
}

func TestCountersOfGonePeersAreForgotten(t *testing.T) {
	defer func(d time.Duration) { forgetAfter = d }(forgetAfter)
	tr := newTransport(Options{Key: testKey}, config.NodeHostConfig{}, nil, nil)
	gone, live := tr.attach("gone:1"), tr.attach("live:1")
	tr.attach("live:1")
	tr.detach(gone)
	tr.detach(live) // one of live's two connections
	tr.attach("new:1")
	if n := len(tr.Stats().Peers); n != 3 {
		t.Fatalf("%d peers right after a connection closed, want all 3 kept", n)
	}
	forgetAfter = 0
	tr.attach("newer:1")
	var addrs []string
	for _, p := range tr.Stats().Peers {
		addrs = append(addrs, p.Address)
	}
	if strings.Join(addrs, ",") != "live:1,new:1,newer:1" {
		t.Fatalf("peers %v: want gone:1 forgotten, the others kept", addrs)
	}
}

func TestRefusalsAreLoggedAtMostOncePerSecond(t *testing.T) {
	var buf proctest.Buffer
	tr := newTransport(Options{Key: testKey, Logger: slog.New(slog.NewTextHandler(&buf, nil))}, config.NodeHostConfig{}, nil, nil)
	for i := 0; i < 100; i++ {
		tr.warn("peer transport: refused a connection", "i", i)
	}
	if n := strings.Count(buf.String(), "refused a connection"); n != 1 {
		t.Fatalf("%d lines for 100 refusals within a second, want 1", n)
	}
	tr.lastWarn.Store(time.Now().Add(-2 * warnEvery).UnixNano())
	tr.warn("peer transport: refused a connection", "i", 100)
	if !strings.Contains(buf.String(), "not_logged_since_last=99") {
		t.Fatalf("the next line does not count the 99 left out:\n%s", buf.String())
	}
}
