package coord

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// secretFile holds, in DataDir, the cluster secret generated for a member
// that founded a cluster alone.
const secretFile = "cluster-secret"

// minSecretBytes is the shortest ClusterSecret accepted.
const minSecretBytes = 16

// clusterKey returns the key with which this member and its peers prove
// they belong to the cluster: on the Raft port's handshake and in
// admission requests. In order: Config.ClusterSecret; the secret stored in
// DataDir; with TLS, the cluster token (the certificates are the proof);
// for a member that founds a cluster alone (alone), a new secret, stored
// in DataDir. Any other member without a secret is a configuration error.
func clusterKey(c *Config, token string, alone bool) ([]byte, error) {
	if c.ClusterSecret != "" {
		if len(c.ClusterSecret) < minSecretBytes {
			return nil, configError("ClusterSecret", "%d bytes; at least %d are required", len(c.ClusterSecret), minSecretBytes)
		}
		return []byte(c.ClusterSecret), nil
	}
	path := filepath.Join(c.DataDir, secretFile)
	b, err := readFile(c.fs(), path)
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if len(s) < minSecretBytes {
			return nil, fmt.Errorf("coord: DataDir: %s holds %d bytes, fewer than %d", path, len(s), minSecretBytes)
		}
		return []byte(s), nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	if c.TLS != nil {
		return []byte(token), nil
	}
	if !alone {
		return nil, configError("ClusterSecret", "required for plaintext peer traffic between members: give every member the same secret (member --cluster-secret-file), or set TLS")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("coord: generating a cluster secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := writeFileSynced(c.fs(), c.DataDir, secretFile, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	c.Logger.Info("generated the cluster secret; members added later need it (member --cluster-secret-file)", "file", path)
	return []byte(s), nil
}

// Admission requests carry a proof of the cluster key, so that a process
// that can reach AdminAddress but does not hold the secret (or, with TLS, a
// certificate) cannot admit itself: the header holds a Unix time and an
// HMAC of it with the request body. A proof is accepted within
// admitProofWindow of its time.
const (
	admitProofHeader = "Coordkit-Proof"
	admitProofWindow = time.Minute
)

func admitProof(key, body []byte, at time.Time) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return ts + "." + hex.EncodeToString(admitMAC(key, ts, body))
}

func admitMAC(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("coordkit admit\x00"))
	m.Write([]byte(ts))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)
}

// checkAdmitProof verifies a proof header against the body it came with.
func checkAdmitProof(key, body []byte, proof string, now time.Time) error {
	ts, mac, ok := strings.Cut(proof, ".")
	if !ok {
		return errors.New("no proof of the cluster secret")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed proof")
	}
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, admitMAC(key, ts, body)) {
		return errors.New("proof does not match the cluster secret")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > admitProofWindow || d < -admitProofWindow {
		return fmt.Errorf("proof is %v old; clocks apart, or a replay", d.Round(time.Second))
	}
	return nil
}
