package meta

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// secretFile holds, in DataDir, the cluster secret generated for a member
// that founded a cluster alone.
const secretFile = "cluster-secret"

// minSecretBytes is the shortest ClusterSecret accepted.
const minSecretBytes = 16

// KeyConfig is what ClusterKey reads of the member's Config.
type KeyConfig struct {
	Secret  string // Config.ClusterSecret
	DataDir string
	FS      vfs.FS
	TLS     bool // Config.TLS is set
	Logger  *slog.Logger
}

// ClusterKey returns the key with which this member and its peers prove
// they belong to the cluster: on the Raft port's handshake and in
// admission requests. In order: Config.ClusterSecret; the secret stored in
// DataDir; with TLS, the cluster token (the certificates are the proof);
// for a member that founds a cluster alone (alone), a new secret, stored
// in DataDir. Any other member without a secret is a configuration error
// (errdefs.ErrInvalidConfig naming ClusterSecret).
func ClusterKey(k KeyConfig, token string, alone bool) ([]byte, error) {
	if k.Secret != "" {
		if len(k.Secret) < minSecretBytes {
			return nil, errdefs.Config("ClusterSecret", "%d bytes; at least %d are required", len(k.Secret), minSecretBytes)
		}
		return []byte(k.Secret), nil
	}
	path := filepath.Join(k.DataDir, secretFile)
	b, err := ReadFile(k.FS, path)
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
	if k.TLS {
		return []byte(token), nil
	}
	if !alone {
		return nil, errdefs.Config("ClusterSecret", "required for plaintext peer traffic between members: give every member the same secret (coordkit --cluster-secret-file), or set TLS")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("coord: generating a cluster secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := WriteFileSynced(k.FS, k.DataDir, secretFile, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("coord: DataDir: %w", err)
	}
	k.Logger.Info("generated the cluster secret; members added later need it (coordkit --cluster-secret-file)", "file", path)
	return []byte(s), nil
}
