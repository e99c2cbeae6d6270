package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The wire protocol. A connection opens with a handshake in which each side
// proves it holds the cluster's key, and only then carries frames:
//
//	client -> server  hello  "CKP1" version(1) kind(1) 0(2) deployment(8) nonceC(32)   48 bytes
//	server -> client  reply  "CKP1" nonceS(32) HMAC(key, "server", hello, nonceS)      68 bytes
//	client -> server  proof  HMAC(key, "client", hello, nonceS)                         32 bytes
//	then, client -> server, frames: type(1) size(4) crc32c(4) payload(size)
//
// Every length is fixed or checked against a limit before anything is
// allocated, and nothing a peer sends is decoded before its proof is checked.
// The server speaks second with its nonce, so a proof cannot be replayed on
// another connection; the client checks the server's MAC, so it sends nothing
// to a listener that does not hold the key.

const (
	magic        = "CKP1"
	version      = 1
	nonceSize    = 32
	macSize      = sha256.Size
	helloSize    = 4 + 1 + 1 + 2 + 8 + nonceSize
	replySize    = 4 + nonceSize + macSize
	headerSize   = 1 + 4 + 4
	labelServer  = "coordkit peer server"
	labelClient  = "coordkit peer client"
	kindMessages = 1 // a connection that carries Raft message batches
	kindSnapshot = 2 // a connection that carries one snapshot's chunks

	frameBatch = 1 // payload: a raftpb.MessageBatch
	frameChunk = 2 // payload: a raftpb.Chunk
)

var (
	errBadHello = errors.New("peer: bad handshake")
	errBadProof = errors.New("peer: the peer does not hold the cluster secret")
	errBadFrame = errors.New("peer: bad frame")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hello opens a connection.
type hello struct {
	kind       byte
	deployment uint64
	nonce      [nonceSize]byte
}

func (h *hello) encode() []byte {
	b := make([]byte, helloSize)
	copy(b, magic)
	b[4] = version
	b[5] = h.kind
	binary.BigEndian.PutUint64(b[8:], h.deployment)
	copy(b[16:], h.nonce[:])
	return b
}

// decodeHello parses a hello; b must be helloSize bytes.
func decodeHello(b []byte) (hello, error) {
	var h hello
	if len(b) != helloSize || string(b[:4]) != magic {
		return h, fmt.Errorf("%w: not a coordkit peer", errBadHello)
	}
	if b[4] != version {
		return h, fmt.Errorf("%w: protocol version %d, want %d", errBadHello, b[4], version)
	}
	if b[5] != kindMessages && b[5] != kindSnapshot {
		return h, fmt.Errorf("%w: connection kind %d", errBadHello, b[5])
	}
	if b[6] != 0 || b[7] != 0 {
		return h, fmt.Errorf("%w: reserved bytes set", errBadHello)
	}
	h.kind = b[5]
	h.deployment = binary.BigEndian.Uint64(b[8:])
	copy(h.nonce[:], b[16:])
	return h, nil
}

// proofOf is the MAC that one side of a handshake sends: label names the
// side, so the server's MAC cannot be reflected back as the client's.
func proofOf(key []byte, label string, helloBytes, nonceS []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(helloBytes)
	m.Write(nonceS)
	return m.Sum(nil)
}

// encodeReply builds the server's answer to helloBytes.
func encodeReply(key, helloBytes []byte, nonceS [nonceSize]byte) []byte {
	b := make([]byte, 0, replySize)
	b = append(b, magic...)
	b = append(b, nonceS[:]...)
	return append(b, proofOf(key, labelServer, helloBytes, nonceS[:])...)
}

// checkReply verifies the server's reply to helloBytes and returns the
// client's proof.
func checkReply(key, helloBytes, reply []byte) ([]byte, error) {
	if len(reply) != replySize || string(reply[:4]) != magic {
		return nil, fmt.Errorf("%w: not a coordkit peer", errBadHello)
	}
	nonceS := reply[4 : 4+nonceSize]
	if !hmac.Equal(reply[4+nonceSize:], proofOf(key, labelServer, helloBytes, nonceS)) {
		return nil, errBadProof
	}
	return proofOf(key, labelClient, helloBytes, nonceS), nil
}

// checkProof verifies the client's proof on the server.
func checkProof(key, helloBytes []byte, nonceS [nonceSize]byte, proof []byte) error {
	if !hmac.Equal(proof, proofOf(key, labelClient, helloBytes, nonceS[:])) {
		return errBadProof
	}
	return nil
}

// header is a frame's header.
type header struct {
	typ  byte
	size uint32
	crc  uint32
}

// putHeader writes the header of payload into b[:headerSize].
func putHeader(b []byte, typ byte, payload []byte) {
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[5:], crc32.Checksum(payload, castagnoli))
}

// limits bounds the frames a connection accepts, by type.
type limits struct {
	batch, chunk uint32
}

// decodeHeader parses a frame header and checks it against the limits of a
// connection of the given kind: a messages connection carries only batches,
// a snapshot connection only chunks.
func decodeHeader(b []byte, kind byte, l limits) (header, error) {
	h := header{typ: b[0], size: binary.BigEndian.Uint32(b[1:]), crc: binary.BigEndian.Uint32(b[5:])}
	var max uint32
	switch {
	case h.typ == frameBatch && kind == kindMessages:
		max = l.batch
	case h.typ == frameChunk && kind == kindSnapshot:
		max = l.chunk
	default:
		return h, fmt.Errorf("%w: type %d on a connection of kind %d", errBadFrame, h.typ, kind)
	}
	if h.size == 0 || h.size > max {
		return h, fmt.Errorf("%w: size %d outside 1..%d", errBadFrame, h.size, max)
	}
	return h, nil
}

// checkPayload verifies a payload against its header's checksum.
func checkPayload(h header, p []byte) error {
	if crc32.Checksum(p, castagnoli) != h.crc {
		return fmt.Errorf("%w: checksum mismatch", errBadFrame)
	}
	return nil
}
