// Package peer is coordkit's transport for Raft traffic between members: a
// dragonboat transport module (config.TransportFactory) over TCP, with mutual
// TLS when configured.
//
// It differs from dragonboat's own TCP transport where coordkit runs: inside
// application processes, with many peers per member.
//
//   - A peer proves it holds the cluster's key (an HMAC handshake, see
//     wire.go) before anything it sends is decoded; with TLS, the
//     certificate is checked first as well.
//   - Every frame's size is checked against a limit derived from the
//     configured request size before it is allocated, and decoding never
//     panics: no peer can crash the process or make it allocate without bound.
//   - Buffers follow the traffic: a connection holds a small read buffer and
//     a queue of encoded frames that is empty when the peer is idle, not
//     megabytes fixed at snapshot-chunk size.
//   - Everything queued for a peer goes out in one write (writev).
//   - Snapshot streams are bounded in number, both ways, so that many
//     joiners at once cannot starve the voters' quorum traffic.
package peer

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// Name is the transport's name, as dragonboat logs it.
const Name = "coordkit-peer"

// Timing and bounds. Variables so that tests can shorten them.
var (
	handshakeTimeout = 5 * time.Second  // a new connection must prove itself within this
	idleTimeout      = 2 * time.Minute  // an inbound connection silent this long is closed
	frameTimeout     = 30 * time.Second // a frame's payload must arrive within this
	writeTimeout     = 10 * time.Second // a write, or a wait for queue space, fails after this
	dialTimeout      = 5 * time.Second
	refusedRetry     = time.Second           // a refused dial is tried again for this long
	refusedEvery     = 25 * time.Millisecond // every this often
	keepAlive        = 10 * time.Second
	slotWait         = 10 * time.Second // an inbound snapshot waits this long for a slot
)

const (
	// maxPending bounds the connections that have not finished their
	// handshake: more are closed at once.
	maxPending = 64
	// readBufferSize is each inbound connection's read buffer; frames
	// larger than what it holds are read straight into their own buffer.
	readBufferSize = 4 << 10
	// scratchSize: payloads up to this size are decoded from a buffer the
	// connection reuses; larger ones get a buffer of their own, freed with
	// the frame.
	scratchSize = 16 << 10
	// chunkBytes is dragonboat's snapshot chunk size (its hard setting
	// SnapshotChunkSize), and chunkSlack room for a chunk's other fields
	// (the membership, file metadata).
	chunkBytes = 2 << 20
	chunkSlack = 1 << 20
)

// Options configures the transport.
type Options struct {
	// Key is the cluster's secret: both ends of a connection prove they
	// hold it. Required unless TLS authenticates peers; it should then
	// still be set, and is checked as well.
	Key []byte
	// MaxRequestBytes is the largest request (Raft entry) the cluster
	// accepts. Message frames are limited to twice this plus room for
	// headers, at least 4 MiB; larger batches are split before sending.
	MaxRequestBytes int
	// SnapshotStreams bounds concurrent snapshot streams: this many
	// outgoing, twice this many incoming. Default 2.
	SnapshotStreams int
	// MaxQueueBytes bounds the frames queued for one peer; a sender waits
	// for room. Default 8 MiB.
	MaxQueueBytes int
	// Logger receives refused connections and frames. Default
	// slog.Default().
	Logger *slog.Logger
	// Observer, when set, tells whether replicaID is known to be a
	// non-voting member (an observer) of shardID. Heartbeats to observers
	// are thinned to one per ObserverHeartbeatEvery (see thinHeartbeats);
	// heartbeats to voters, and to replicas it does not know, all go out.
	Observer func(shardID, replicaID uint64) bool
	// ObserverHeartbeatEvery is the longest an observer goes without a
	// heartbeat while the leader has nothing new for it. 0: heartbeats
	// are never thinned.
	ObserverHeartbeatEvery time.Duration
}

// Factory creates the transport for dragonboat (config.TransportFactory)
// and keeps the one it created last, for Stats.
type Factory struct {
	opts    Options
	current atomic.Pointer[Transport]
}

// NewFactory returns a factory of transports configured by o.
func NewFactory(o Options) *Factory {
	if o.SnapshotStreams <= 0 {
		o.SnapshotStreams = 2
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 8 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Factory{opts: o}
}

// Create implements config.TransportFactory.
func (f *Factory) Create(nhc config.NodeHostConfig, mh raftio.MessageHandler, ch raftio.ChunkHandler) raftio.ITransport {
	t := newTransport(f.opts, nhc, mh, ch)
	f.current.Store(t)
	return t
}

// Validate implements config.TransportFactory: addresses are host:port.
func (f *Factory) Validate(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host != "" && port != ""
}

// Heard is Transport.Heard on the transport created last; false before one
// was created.
func (f *Factory) Heard(addr string) (time.Time, bool) {
	if t := f.current.Load(); t != nil {
		return t.Heard(addr)
	}
	return time.Time{}, false
}

// Stats returns the counters of the transport created last, or zero before
// one was created.
func (f *Factory) Stats() Stats {
	if t := f.current.Load(); t != nil {
		return t.Stats()
	}
	return Stats{}
}

// TimeoutNow hands this member's replica replicaID of shard shardID a
// TimeoutNow message, as though a peer had sent it: the message with which
// a Raft leader hands leadership to a successor. A follower that receives
// it campaigns at once, without pre-vote, instead of waiting out its
// election timeout. It reports false before dragonboat created the
// transport. The caller must know that campaigning cannot disrupt a leader:
// this method checks nothing.
func (f *Factory) TimeoutNow(shardID, replicaID uint64) bool {
	t := f.current.Load()
	if t == nil {
		return false
	}
	// No SourceAddress: dragonboat would record it as the sender's address.
	t.onBatch(pb.MessageBatch{
		DeploymentId: t.deployment,
		BinVer:       raftio.TransportBinVersion,
		Requests:     []pb.Message{{Type: pb.TimeoutNow, ShardID: shardID, From: replicaID, To: replicaID}},
	})
	return true
}

// Transport implements raftio.ITransport.
type Transport struct {
	opts       Options
	nhc        config.NodeHostConfig
	deployment uint64
	lim        limits
	softBatch  int // a batch is split into frames of about this size
	onBatch    raftio.MessageHandler
	onChunk    raftio.ChunkHandler
	log        *slog.Logger

	serverTLS *tls.Config

	pending chan struct{} // handshakes under way
	snapOut chan struct{} // outgoing snapshot streams
	snapIn  chan struct{} // incoming snapshot streams

	ln      net.Listener
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	inbound map[net.Conn]struct{}
	peers   map[string]*peerCounters
	closed  bool

	refused      atomic.Uint64 // connections closed before or during the handshake
	badFrames    atomic.Uint64 // connections closed for a bad frame
	badHandshake atomic.Uint64 // of refused: a failed proof or a malformed hello
	lastWarn     atomic.Int64  // unix nanos of the last refusal logged
	unlogged     atomic.Uint64 // refusals not logged since then
	recvChunks   atomic.Uint64 // snapshot chunks received, from any peer
}

func newTransport(o Options, nhc config.NodeHostConfig, mh raftio.MessageHandler, ch raftio.ChunkHandler) *Transport {
	batch := max(2*o.MaxRequestBytes+64<<10, 4<<20)
	return &Transport{
		opts: o, nhc: nhc, deployment: nhc.GetDeploymentID(),
		lim:       limits{batch: uint32(batch), chunk: chunkBytes + chunkSlack},
		softBatch: 1 << 20,
		onBatch:   mh, onChunk: ch, log: o.Logger,
		pending: make(chan struct{}, maxPending),
		snapOut: make(chan struct{}, o.SnapshotStreams),
		snapIn:  make(chan struct{}, 2*o.SnapshotStreams),
		stop:    make(chan struct{}),
		inbound: map[net.Conn]struct{}{},
		peers:   map[string]*peerCounters{},
	}
}

// Name implements raftio.ITransport.
func (t *Transport) Name() string { return Name }

// Start listens on the NodeHost's listen address.
func (t *Transport) Start() error {
	if len(t.opts.Key) == 0 && !t.nhc.MutualTLS {
		return errors.New("peer: no cluster key and no TLS: peers could not be authenticated")
	}
	var err error
	if t.serverTLS, err = t.nhc.GetServerTLSConfig(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", t.nhc.GetListenAddress())
	if err != nil {
		return err
	}
	t.ln = ln
	t.wg.Add(1)
	go t.accept()
	return nil
}

// Close stops listening, closes every inbound connection and waits for
// their goroutines. Outgoing connections are closed by their owners.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.stop)
	for c := range t.inbound {
		c.Close()
	}
	t.mu.Unlock()
	if t.ln != nil {
		t.ln.Close()
	}
	t.wg.Wait()
	return nil
}

func (t *Transport) accept() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.stop:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// A transient error (out of file descriptors): back off
			// rather than spin, and keep serving.
			t.log.Warn("peer transport: accept failed", "err", err)
			select {
			case <-t.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		select {
		case t.pending <- struct{}{}:
		default:
			t.refused.Add(1)
			c.Close()
			continue
		}
		if !t.track(c) {
			<-t.pending
			c.Close()
			return
		}
		t.wg.Add(1)
		go t.serve(c)
	}
}

// track registers an inbound connection for Close; false once closed.
func (t *Transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inbound[c] = struct{}{}
	return true
}

func (t *Transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.inbound, c)
	t.mu.Unlock()
	c.Close()
}

// serve runs one inbound connection: the handshake, then frames until the
// peer closes it, sends something wrong, or goes silent.
func (t *Transport) serve(raw net.Conn) {
	defer t.wg.Done()
	defer t.untrack(raw)
	h, c, err := t.accepted(raw)
	<-t.pending
	if err != nil {
		t.refused.Add(1)
		if errors.Is(err, errBadHello) || errors.Is(err, errBadProof) {
			t.badHandshake.Add(1)
			t.warn("peer transport: refused a connection", "remote", raw.RemoteAddr().String(), "err", err)
		}
		return
	}
	if h.kind == kindSnapshot {
		timer := time.NewTimer(slotWait)
		select {
		case t.snapIn <- struct{}{}:
			timer.Stop()
			defer func() { <-t.snapIn }()
		case <-timer.C:
			t.log.Warn("peer transport: too many incoming snapshots; refused one", "remote", raw.RemoteAddr().String())
			return
		case <-t.stop:
			timer.Stop()
			return
		}
	}
	if err := t.readFrames(c, h.kind); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		if errors.Is(err, errBadFrame) {
			t.badFrames.Add(1)
			t.warn("peer transport: closed a connection that sent a bad frame", "remote", raw.RemoteAddr().String(), "err", err)
		}
	}
}

// warnEvery is the least time between two refusals logged: whoever can
// reach the port can make refusals as fast as it connects, and the log is
// the host application's.
const warnEvery = time.Second

// warn logs a refusal at Warn, at most once per warnEvery; the line says
// how many were left out before it. Every refusal is counted in Stats.
func (t *Transport) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := t.lastWarn.Load()
	if now-last < int64(warnEvery) || !t.lastWarn.CompareAndSwap(last, now) {
		t.unlogged.Add(1)
		return
	}
	if n := t.unlogged.Swap(0); n > 0 {
		args = append(args, "not_logged_since_last", n)
	}
	t.log.Warn(msg, args...)
}

// accepted runs the server side of the handshake on raw, with TLS first
// when configured, and returns the hello and the connection to read frames
// from.
func (t *Transport) accepted(raw net.Conn) (hello, net.Conn, error) {
	c := raw
	if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return hello{}, nil, err
	}
	if t.serverTLS != nil {
		tc := tls.Server(raw, t.serverTLS)
		if err := tc.Handshake(); err != nil {
			return hello{}, nil, err
		}
		c = tc
	}
	// The magic number first: whatever else connected is refused before
	// the rest of a hello is waited for.
	hb := make([]byte, helloSize)
	if _, err := io.ReadFull(c, hb[:len(magic)]); err != nil {
		return hello{}, nil, err
	}
	if string(hb[:len(magic)]) != magic {
		return hello{}, nil, fmt.Errorf("%w: not a coordkit peer", errBadHello)
	}
	if _, err := io.ReadFull(c, hb[len(magic):]); err != nil {
		return hello{}, nil, err
	}
	h, err := decodeHello(hb)
	if err != nil {
		return h, nil, err
	}
	if h.deployment != t.deployment {
		return h, nil, fmt.Errorf("%w: cluster token differs", errBadHello)
	}
	var nonceS [nonceSize]byte
	rand.Read(nonceS[:])
	if _, err := c.Write(encodeReply(t.opts.Key, hb, nonceS)); err != nil {
		return h, nil, err
	}
	proof := make([]byte, macSize)
	if _, err := io.ReadFull(c, proof); err != nil {
		return h, nil, err
	}
	if err := checkProof(t.opts.Key, hb, nonceS, proof); err != nil {
		return h, nil, err
	}
	return h, c, c.SetWriteDeadline(time.Time{})
}

// readFrames reads and delivers frames until an error.
func (t *Transport) readFrames(c net.Conn, kind byte) error {
	r := bufio.NewReaderSize(c, readBufferSize)
	hb := make([]byte, headerSize)
	var scratch []byte
	var pc *peerCounters
	for {
		if err := c.SetReadDeadline(time.Now().Add(idleTimeout)); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, hb); err != nil {
			return err
		}
		h, err := decodeHeader(hb, kind, t.lim)
		if err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(frameTimeout)); err != nil {
			return err
		}
		var p []byte
		if int(h.size) <= scratchSize {
			if scratch == nil {
				scratch = make([]byte, scratchSize)
			}
			p = scratch[:h.size]
		} else {
			p = make([]byte, h.size)
		}
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		if err := checkPayload(h, p); err != nil {
			return err
		}
		if kind == kindMessages {
			var b pb.MessageBatch
			if err := decode("batch", &b, p); err != nil {
				return err
			}
			if b.DeploymentId != t.deployment {
				return fmt.Errorf("%w: batch of another cluster", errBadFrame)
			}
			if pc == nil {
				pc = t.attach(b.SourceAddress)
				defer t.detach(pc)
			}
			pc.recvBytes.Add(uint64(headerSize + len(p)))
			pc.heard.Store(time.Now().UnixNano())
			pc.recvBatches.Add(1)
			pc.recvMessages.Add(uint64(len(b.Requests)))
			t.onBatch(b)
			continue
		}
		var ch pb.Chunk
		if err := decode("chunk", &ch, p); err != nil {
			return err
		}
		if ch.DeploymentId != t.deployment {
			return fmt.Errorf("%w: chunk of another cluster", errBadFrame)
		}
		t.recvChunks.Add(1)
		if !t.onChunk(ch) {
			return fmt.Errorf("peer: snapshot chunk refused")
		}
	}
}

// decode unmarshals a frame's payload into m; a malformed one is an
// error, never a panic, whatever the decoder does with it.
func decode(what string, m interface{ Unmarshal([]byte) error }, p []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: undecodable %s: %v", errBadFrame, what, r)
		}
	}()
	if err := m.Unmarshal(p); err != nil {
		return fmt.Errorf("%w: undecodable %s: %v", errBadFrame, what, err)
	}
	return nil
}

// dial connects to target and runs the client side of the handshake.
func (t *Transport) dial(ctx context.Context, target string, kind byte) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: keepAlive}
	c, err := d.DialContext(ctx, "tcp", target)
	// A refused dial is tried again for a moment: the peer may be a member
	// starting up, such as an observer that was just admitted and opens
	// its port right after. A failed connection would trip dragonboat's
	// circuit breaker for the address, which waits 0.5 s or more before
	// the next attempt.
	for start := time.Now(); errors.Is(err, syscall.ECONNREFUSED) && time.Since(start) < refusedRetry; {
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(refusedEvery):
		}
		c, err = d.DialContext(ctx, "tcp", target)
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) {
		c.Close()
		return nil, fmt.Errorf("peer: %s: %w", target, err)
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	ctl, err := t.nhc.GetClientTLSConfig(target)
	if err != nil {
		return fail(err)
	}
	if ctl != nil {
		tc := tls.Client(c, ctl)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(err)
		}
		c = tc
	}
	hl := hello{kind: kind, deployment: t.deployment}
	rand.Read(hl.nonce[:])
	hb := hl.encode()
	if _, err := c.Write(hb); err != nil {
		return fail(err)
	}
	reply := make([]byte, replySize)
	if _, err := io.ReadFull(c, reply); err != nil {
		return fail(err)
	}
	proof, err := checkReply(t.opts.Key, hb, reply)
	if errors.Is(err, errBadProof) {
		// Send a proof all the same, so that the listener logs the
		// mismatch too: the operator sees it on both members.
		c.Write(proofOf(t.opts.Key, labelClient, hb, reply[len(magic):len(magic)+nonceSize]))
	}
	if err != nil {
		return fail(err)
	}
	if _, err := c.Write(proof); err != nil {
		return fail(err)
	}
	return c, c.SetDeadline(time.Time{})
}

// GetConnection implements raftio.ITransport: a connection for message
// batches to target.
func (t *Transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.dial(ctx, target, kindMessages)
	if err != nil {
		return nil, err
	}
	mc := &msgConn{t: t, c: c, pc: t.attach(target), wake: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{}),
		beats: map[beatKey]beat{}}
	mc.wg.Add(1)
	go mc.writer()
	return mc, nil
}

// GetSnapshotConnection implements raftio.ITransport: a connection for one
// snapshot's chunks. It waits, within ctx, while the outgoing streams are
// all in use.
func (t *Transport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	select {
	case t.snapOut <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.stop:
		return nil, net.ErrClosed
	}
	c, err := t.dial(ctx, target, kindSnapshot)
	if err != nil {
		<-t.snapOut
		return nil, err
	}
	return &snapConn{t: t, c: c, pc: t.attach(target)}, nil
}

// msgConn sends message batches to one peer. SendMessageBatch encodes a
// batch and queues its frames; one writer sends everything queued in one
// write, so batches that arrive while a write is under way share the next.
type msgConn struct {
	t    *Transport
	c    net.Conn
	pc   *peerCounters
	mu   sync.Mutex
	q    net.Buffers // frames waiting
	qlen int         // bytes in q
	qmsg int         // messages in q
	err  error       // set when the connection failed; sticky
	wake chan struct{}
	room chan struct{}
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	beatMu sync.Mutex
	beats  map[beatKey]beat // the last heartbeat sent to each observer on this connection
}

// beatKey names a replica: heartbeats are per shard.
type beatKey struct{ shard, replica uint64 }

// beat is the last heartbeat sent to an observer.
type beat struct {
	at           time.Time
	term, commit uint64
}

// thinHeartbeats removes from b the heartbeats to observers that carry
// nothing new: the same term and commit index as the last one sent to that
// observer on this connection, less than ObserverHeartbeatEvery ago.
//
// An observer never campaigns, and ReadIndex confirmations ask voters only,
// so what it needs heartbeats for is the commit index (which a heartbeat
// that changes it still carries at once) and, through its response, the
// leader's retry of replication after a lost message or a reconnection
// (which then waits up to ObserverHeartbeatEvery). Each heartbeat costs the
// observer a wake-up and a response, and the leader one read per observer:
// thinned, an idle fleet of observers costs the leader little.
func (m *msgConn) thinHeartbeats(b *pb.MessageBatch) (thinned int) {
	o := &m.t.opts
	if o.Observer == nil || o.ObserverHeartbeatEvery <= 0 {
		return 0
	}
	var now time.Time
	var kept []pb.Message // b.Requests less the heartbeats left out, once one is: the batch is dragonboat's
	m.beatMu.Lock()
	for i, r := range b.Requests {
		drop := false
		if r.Type == pb.Heartbeat && r.Hint == 0 && r.HintHigh == 0 && o.Observer(r.ShardID, r.To) {
			if now.IsZero() {
				now = time.Now()
			}
			k := beatKey{r.ShardID, r.To}
			last, ok := m.beats[k]
			if drop = ok && last.term == r.Term && last.commit == r.Commit && now.Sub(last.at) < o.ObserverHeartbeatEvery; !drop {
				m.beats[k] = beat{at: now, term: r.Term, commit: r.Commit}
			}
		}
		switch {
		case drop && kept == nil:
			kept = append(make([]pb.Message, 0, len(b.Requests)-1), b.Requests[:i]...)
			thinned++
		case drop:
			thinned++
		case kept != nil:
			kept = append(kept, r)
		}
	}
	m.beatMu.Unlock()
	if thinned > 0 {
		b.Requests = kept
	}
	return thinned
}

// SendMessageBatch implements raftio.IConnection. It blocks while the
// peer's queue is full, for at most writeTimeout.
func (m *msgConn) SendMessageBatch(b pb.MessageBatch) error {
	if n := m.thinHeartbeats(&b); n > 0 {
		m.pc.thinned.Add(uint64(n))
		if len(b.Requests) == 0 {
			return nil
		}
	}
	frames, msgs, dropped := m.t.encodeBatch(b)
	if dropped > 0 {
		m.pc.dropped.Add(uint64(dropped))
	}
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	var deadline <-chan time.Time
	m.mu.Lock()
	for m.err == nil && m.qlen > 0 && m.qlen+size > m.t.opts.MaxQueueBytes {
		m.mu.Unlock()
		if deadline == nil {
			tm := time.NewTimer(writeTimeout)
			defer tm.Stop()
			deadline = tm.C
		}
		select {
		case <-m.room:
		case <-deadline:
			m.pc.dropped.Add(uint64(msgs))
			return fmt.Errorf("peer: queue to %s full for %v", m.c.RemoteAddr(), writeTimeout)
		case <-m.done:
		}
		m.mu.Lock()
	}
	if err := m.err; err != nil {
		m.mu.Unlock()
		m.pc.dropped.Add(uint64(msgs))
		return err
	}
	m.q = append(m.q, frames...)
	m.qlen += size
	m.qmsg += msgs
	m.pc.queueBytes.Add(int64(size))
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

func (m *msgConn) writer() {
	defer m.wg.Done()
	for {
		select {
		case <-m.wake:
		case <-m.done:
			return
		}
		m.mu.Lock()
		q, size, msgs := m.q, m.qlen, m.qmsg
		m.q, m.qlen, m.qmsg = nil, 0, 0
		m.mu.Unlock()
		if len(q) == 0 {
			continue
		}
		frames := len(q)
		m.c.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := q.WriteTo(m.c)
		m.pc.queueBytes.Add(-int64(size))
		select {
		case m.room <- struct{}{}:
		default:
		}
		if err != nil {
			m.pc.dropped.Add(uint64(msgs))
			m.mu.Lock()
			m.err = err
			m.mu.Unlock()
			m.c.Close()
			return
		}
		m.pc.sentBytes.Add(uint64(size))
		m.pc.sentBatches.Add(uint64(frames))
		m.pc.sentMessages.Add(uint64(msgs))
		m.pc.writes.Add(1)
	}
}

// Close implements raftio.IConnection. Frames still queued are dropped.
func (m *msgConn) Close() {
	m.once.Do(func() {
		close(m.done)
		m.c.Close()
		m.wg.Wait()
		m.mu.Lock()
		if m.qlen > 0 {
			m.pc.queueBytes.Add(-int64(m.qlen))
			m.pc.dropped.Add(uint64(m.qmsg))
			m.q, m.qlen, m.qmsg = nil, 0, 0
		}
		if m.err == nil {
			m.err = net.ErrClosed
		}
		m.mu.Unlock()
		m.t.detach(m.pc)
	})
}

// snapConn sends one snapshot's chunks, one write each.
type snapConn struct {
	t    *Transport
	c    net.Conn
	pc   *peerCounters
	once sync.Once
}

// SendChunk implements raftio.ISnapshotConnection.
func (s *snapConn) SendChunk(ch pb.Chunk) error {
	n := ch.Size()
	if n > int(s.t.lim.chunk) {
		return fmt.Errorf("peer: snapshot chunk of %d bytes exceeds the %d-byte frame limit", n, s.t.lim.chunk)
	}
	buf := make([]byte, headerSize+n)
	w, err := ch.MarshalTo(buf[headerSize:])
	if err != nil {
		return err
	}
	buf = buf[:headerSize+w]
	putHeader(buf, frameChunk, buf[headerSize:])
	s.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := s.c.Write(buf); err != nil {
		return err
	}
	s.pc.sentBytes.Add(uint64(len(buf)))
	s.pc.sentChunks.Add(1)
	s.pc.writes.Add(1)
	return nil
}

// Close implements raftio.ISnapshotConnection and frees the stream's slot.
func (s *snapConn) Close() {
	s.once.Do(func() {
		s.c.Close()
		<-s.t.snapOut
		s.t.detach(s.pc)
	})
}

// encodeBatch encodes b as frames of about softBatch bytes each: messages
// are grouped greedily, and a Replicate message too large for one frame is
// split into several, each with the entries that follow the one before
// (a follower treats them as the leader's pipelined Replicates). A message
// that cannot fit the receiver's limit even alone is dropped and counted;
// Raft sends again.
func (t *Transport) encodeBatch(b pb.MessageBatch) (frames [][]byte, msgs, dropped int) {
	if b.SizeUpperLimit() <= t.softBatch {
		return [][]byte{t.encodeFrame(&b)}, len(b.Requests), 0
	}
	out := pb.MessageBatch{DeploymentId: b.DeploymentId, SourceAddress: b.SourceAddress, BinVer: b.BinVer}
	size := 0
	flush := func() {
		if len(out.Requests) > 0 {
			frames = append(frames, t.encodeFrame(&out))
			msgs += len(out.Requests)
			out.Requests = nil
			size = 0
		}
	}
	add := func(m pb.Message) {
		n := m.SizeUpperLimit()
		if n > int(t.lim.batch)-1024 {
			dropped++
			return
		}
		if size > 0 && size+n > t.softBatch {
			flush()
		}
		out.Requests = append(out.Requests, m)
		size += n
	}
	for _, m := range b.Requests {
		if m.Type != pb.Replicate || m.SizeUpperLimit() <= t.softBatch || len(m.Entries) < 2 {
			add(m)
			continue
		}
		for _, part := range splitReplicate(m, t.softBatch) {
			add(part)
		}
	}
	flush()
	return frames, msgs, dropped
}

// splitReplicate splits a Replicate message into consecutive ones whose
// entries take about limit bytes each (at least one entry each).
func splitReplicate(m pb.Message, limit int) []pb.Message {
	var parts []pb.Message
	prevIndex, prevTerm := m.LogIndex, m.LogTerm
	ents := m.Entries
	for len(ents) > 0 {
		n, size := 0, 0
		for n < len(ents) && (n == 0 || size+ents[n].SizeUpperLimit() <= limit) {
			size += ents[n].SizeUpperLimit()
			n++
		}
		p := m
		p.LogIndex, p.LogTerm = prevIndex, prevTerm
		p.Entries = ents[:n:n]
		parts = append(parts, p)
		last := ents[n-1]
		prevIndex, prevTerm = last.Index, last.Term
		ents = ents[n:]
	}
	return parts
}

func (t *Transport) encodeFrame(b *pb.MessageBatch) []byte {
	buf := make([]byte, headerSize+b.SizeUpperLimit())
	n, err := b.MarshalTo(buf[headerSize:])
	if err != nil {
		panic(fmt.Sprintf("peer: encoding a message batch: %v", err)) // our own batch: a bug
	}
	buf = buf[:headerSize+n]
	putHeader(buf, frameBatch, buf[headerSize:])
	return buf
}

// peerCounters are one peer's counters, by its address.
type peerCounters struct {
	conns int       // connections using these counters; under Transport.mu
	idle  time.Time // when conns last fell to 0; under Transport.mu

	sentBytes, sentMessages, sentBatches, sentChunks, writes atomic.Uint64
	recvBytes, recvMessages, recvBatches                     atomic.Uint64
	dropped                                                  atomic.Uint64
	thinned                                                  atomic.Uint64
	queueBytes                                               atomic.Int64
	heard                                                    atomic.Int64 // UnixNano of the last batch received, 0 for none
}

// forgetAfter: the counters of a peer with no connection for this long
// are dropped when a new peer appears, so that a fleet whose instances come
// and go under new addresses does not grow the map (or the metrics) forever.
var forgetAfter = 10 * time.Minute

// attach returns addr's counters for a connection, which must detach them
// when it ends.
func (t *Transport) attach(addr string) *peerCounters {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc, ok := t.peers[addr]
	if !ok {
		now := time.Now()
		for a, old := range t.peers {
			if old.conns == 0 && now.Sub(old.idle) > forgetAfter {
				delete(t.peers, a)
			}
		}
		pc = &peerCounters{}
		t.peers[addr] = pc
	}
	pc.conns++
	return pc
}

func (t *Transport) detach(pc *peerCounters) {
	t.mu.Lock()
	if pc.conns--; pc.conns == 0 {
		pc.idle = time.Now()
	}
	t.mu.Unlock()
}

// Stats are the transport's counters since it started.
type Stats struct {
	// RefusedConnections counts inbound connections closed before they
	// proved they belong to the cluster (too many pending, a failed or
	// timed-out handshake); BadHandshakes those of them that sent a wrong
	// proof or something that is not a coordkit hello.
	RefusedConnections, BadHandshakes uint64
	// BadFrames counts inbound connections closed for a malformed,
	// oversized or undecodable frame.
	BadFrames uint64
	// ReceivedChunks counts snapshot chunks received from any peer.
	ReceivedChunks uint64
	// Peers holds one entry per peer address, sorted by address.
	Peers []PeerStats
}

// PeerStats are the counters of traffic with one peer.
type PeerStats struct {
	Address string
	// Sent: bytes, Raft messages, message frames, snapshot chunks and
	// write system calls to this peer. Messages / Batches is how many
	// messages a frame carries; Batches / Writes how many frames a write.
	SentBytes, SentMessages, SentBatches, SentChunks, Writes uint64
	// Received from this peer (message traffic; snapshot chunks are
	// counted in Stats.ReceivedChunks).
	ReceivedBytes, ReceivedMessages, ReceivedBatches uint64
	// Dropped counts messages to this peer that were not sent: a full
	// queue, a failed connection, or a message too large to send.
	Dropped uint64
	// ThinnedHeartbeats counts heartbeats to this peer, an observer, left
	// out because they carried nothing new (Options.ObserverHeartbeatEvery).
	ThinnedHeartbeats uint64
	// QueueBytes is what is queued for this peer now.
	QueueBytes int64
	// LastReceived is when the last message frame from this peer arrived,
	// zero if none did.
	LastReceived time.Time
}

// Heard returns when the last message frame from the peer at addr (its
// RaftAddress, as it sends it in every batch) arrived, and false if none
// did, or not in the last 10 minutes. It takes a lock and reads an atomic:
// cheap enough for every member on every tick. Safe for concurrent use.
func (t *Transport) Heard(addr string) (time.Time, bool) {
	t.mu.Lock()
	pc := t.peers[addr]
	t.mu.Unlock()
	if pc == nil {
		return time.Time{}, false
	}
	at := unixNano(pc.heard.Load())
	return at, !at.IsZero()
}

func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Stats returns the transport's counters. Safe for concurrent use.
func (t *Transport) Stats() Stats {
	s := Stats{RefusedConnections: t.refused.Load(), BadHandshakes: t.badHandshake.Load(), BadFrames: t.badFrames.Load(),
		ReceivedChunks: t.recvChunks.Load()}
	t.mu.Lock()
	for addr, pc := range t.peers {
		s.Peers = append(s.Peers, PeerStats{Address: addr,
			SentBytes: pc.sentBytes.Load(), SentMessages: pc.sentMessages.Load(), SentBatches: pc.sentBatches.Load(),
			SentChunks: pc.sentChunks.Load(), Writes: pc.writes.Load(),
			ReceivedBytes: pc.recvBytes.Load(), ReceivedMessages: pc.recvMessages.Load(),
			ReceivedBatches: pc.recvBatches.Load(),
			Dropped:         pc.dropped.Load(), ThinnedHeartbeats: pc.thinned.Load(),
			QueueBytes: pc.queueBytes.Load(), LastReceived: unixNano(pc.heard.Load())})
	}
	t.mu.Unlock()
	sort.Slice(s.Peers, func(i, j int) bool { return s.Peers[i].Address < s.Peers[j].Address })
	return s
}
