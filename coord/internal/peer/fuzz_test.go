package peer

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
)

// FuzzHandshake feeds arbitrary bytes to both sides' handshake decoders:
// they must never panic, and never accept what the key did not sign.
func FuzzHandshake(f *testing.F) {
	h := hello{kind: kindMessages, deployment: testDeployment}
	hb := h.encode()
	var nonce [nonceSize]byte
	f.Add(hb, encodeReply(testKey, hb, nonce))
	f.Add(dragonboatFrame(), []byte("CKP1"))
	f.Fuzz(func(t *testing.T, helloBytes, reply []byte) {
		if _, err := decodeHello(helloBytes); err == nil && len(helloBytes) != helloSize {
			t.Fatalf("accepted a hello of %d bytes", len(helloBytes))
		}
		proof, err := checkReply(testKey, hb, reply)
		if err == nil {
			// Only a reply signed with the key passes: the fuzzer
			// cannot forge one, except by replaying the seed.
			var n [nonceSize]byte
			copy(n[:], reply[4:])
			if string(reply) != string(encodeReply(testKey, hb, n)) {
				t.Fatal("accepted a reply the key did not sign")
			}
			if checkProof(testKey, hb, n, proof) != nil {
				t.Fatal("the client's own proof does not verify")
			}
		}
	})
}

// FuzzReadFrames runs the server's frame loop over arbitrary bytes, on both
// kinds of connection: it must never panic, never deliver anything that is
// not a whole, checksummed frame within the limits, and always end.
func FuzzReadFrames(f *testing.F) {
	valid := func(typ byte, payload []byte) []byte {
		b := make([]byte, headerSize, headerSize+len(payload))
		putHeader(b, typ, payload)
		return append(b, payload...)
	}
	batch, _ := (&pb.MessageBatch{DeploymentId: testDeployment, BinVer: raftio.TransportBinVersion,
		Requests: []pb.Message{{Type: pb.Heartbeat, ShardID: 1, To: 2, From: 1, Term: 4}}}).Marshal()
	chunk, _ := (&pb.Chunk{ShardID: 1, DeploymentId: testDeployment, Data: []byte("data")}).Marshal()
	f.Add(byte(kindMessages), valid(frameBatch, batch))
	f.Add(byte(kindSnapshot), valid(frameChunk, chunk))
	f.Add(byte(kindMessages), dragonboatFrame())
	f.Add(byte(kindMessages), valid(frameBatch, []byte{0xff, 0xff, 0xff, 0x0f}))
	f.Fuzz(func(t *testing.T, kind byte, in []byte) {
		if kind != kindMessages && kind != kindSnapshot {
			kind = kindMessages
		}
		s := &sink{}
		tr := newTransport(Options{Key: testKey, MaxRequestBytes: 1 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
			config.NodeHostConfig{DeploymentID: testDeployment}, s.onBatch, s.onChunk)
		server, client := net.Pipe()
		go func() {
			client.Write(in)
			client.Close()
		}()
		err := tr.readFrames(server, kind)
		server.Close()
		if err == nil {
			t.Fatal("readFrames ended without an error")
		}
		for _, b := range s.batches {
			if b.DeploymentId != testDeployment {
				t.Fatalf("delivered a batch of deployment %d", b.DeploymentId)
			}
		}
		for _, c := range s.chunks {
			if c.DeploymentId != testDeployment {
				t.Fatalf("delivered a chunk of deployment %d", c.DeploymentId)
			}
		}
	})
}
