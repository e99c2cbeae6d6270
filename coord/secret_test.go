package coord_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/internal/proctest"
)

// A member that founds a cluster alone generates the cluster secret in its
// DataDir, readable by its owner only, and keeps it across restarts.
func TestLoneMemberGeneratesItsSecretOnce(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	cfg := coord.Config{DataDir: dir, RaftAddress: proctest.FreeAddr(t), Logger: quietLogger()}
	n, err := coord.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, n, "/s/a", "1")
	n.Close()
	f := filepath.Join(dir, "cluster-secret")
	first, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", f, fi.Mode().Perm())
	}
	if b, err := hex.DecodeString(strings.TrimSpace(string(first))); err != nil || len(b) != 32 {
		t.Fatalf("secret %q: want 32 random bytes in hex (%v)", first, err)
	}
	if n, err = coord.Open(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mustPut(t, n, "/s/b", "2")
	again, _ := os.ReadFile(f)
	if !bytes.Equal(first, again) {
		t.Fatal("a restart changed the generated secret")
	}
}

func TestShortSecretIsAConfigError(t *testing.T) {
	_, err := coord.Open(ctxT(t), coord.Config{DataDir: t.TempDir(), RaftAddress: proctest.FreeAddr(t),
		ClusterSecret: "short", Logger: quietLogger()})
	if !errors.Is(err, coord.ErrInvalidConfig) || !strings.Contains(err.Error(), "ClusterSecret") {
		t.Fatalf("a 5-byte secret: %v", err)
	}
}

// A process that can reach the admission port but does not hold the secret
// cannot admit itself, whatever it sends; nothing it sends harms the member.
func TestAdmissionWithoutProofOfTheSecretIsRefused(t *testing.T) {
	c, admin := seededCluster(t, time.Hour)
	url := "http://" + admin[0] + "/coordkit/v1/admit"
	body, _ := json.Marshal(map[string]string{"token": "coordtest", "name": "evil", "address": proctest.FreeAddr(t)})
	post := func(r io.Reader, proof string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, url, r)
		if err != nil {
			t.Fatal(err)
		}
		if proof != "" {
			req.Header.Set("Coordkit-Proof", proof)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, proof string
		want        int
	}{
		{"no proof", "", http.StatusUnauthorized},
		{"a made-up proof", "1." + strings.Repeat("ab", 32), http.StatusUnauthorized},
		{"a malformed proof", "garbage", http.StatusUnauthorized},
		{"a proof without a MAC", strings.Repeat("9", 30) + ".", http.StatusUnauthorized},
	} {
		if code, msg := post(bytes.NewReader(body), tc.proof); code != tc.want {
			t.Fatalf("%s: %d %s, want %d", tc.name, code, msg, tc.want)
		}
	}
	// A body over the limit is refused before anything is checked.
	if code, _ := post(io.LimitReader(zeros{}, 300<<20), ""); code != http.StatusBadRequest {
		t.Fatalf("a 300 MB body: %d, want 400", code)
	}
	if _, ok := memberNamed(t, c.Node(0), "evil"); ok {
		t.Fatal("a process without the secret admitted itself")
	}
	mustPut(t, c.Node(0), "/fleet/after", "v")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
