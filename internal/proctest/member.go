package proctest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Member is a coordkit member process (cmd/coordkit) of a test: a Proc
// with its two loopback addresses and its data directory.
type Member struct {
	*Proc
	Peer, Client string // host:port of its Raft port and of its HTTP API
	DataDir      string
}

// NewMember prepares member name of program bin: free loopback addresses,
// its log in dir/name.log (with a banner per start) and its data in
// dir/data/name. It does not start it. When the test ends the process is
// killed, and if the test failed, the last 60 lines of its log are logged.
func NewMember(t testing.TB, bin, dir, name string) *Member {
	t.Helper()
	m := &Member{Proc: &Proc{Name: name, Bin: bin, Log: filepath.Join(dir, name+".log"), Banner: true},
		Peer: FreeAddr(t), Client: FreeAddr(t), DataDir: filepath.Join(dir, "data", name)}
	t.Cleanup(func() {
		m.Kill()
		if !t.Failed() {
			return
		}
		lines, err := m.Tail(60)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			lines = []string{err.Error()}
		}
		t.Logf("--- last lines of %s (all in %s):\n%s", m.Name, m.Log, strings.Join(lines, "\n"))
	})
	return m
}

// Founders prepares n members m1..mn of program bin that found a cluster
// together (NewMember), with initial-cluster token and one generated
// cluster secret, each given extra flags after the founding ones. It does
// not start them.
func Founders(t testing.TB, bin, dir, token string, n int, extra ...string) []*Member {
	t.Helper()
	ms := make([]*Member, n)
	var initial []string
	for i := range ms {
		ms[i] = NewMember(t, bin, dir, fmt.Sprintf("m%d", i+1))
		initial = append(initial, ms[i].Name+"=http://"+ms[i].Peer)
	}
	secret := SecretFile(t, dir)
	for _, m := range ms {
		m.Args = append(m.Flags(strings.Join(initial, ","), token, "new", secret), extra...)
	}
	return ms
}

// Flags are the member's flags to start with an initial cluster (etcd's
// NAME=http://HOST:PORT,...), a token, a state ("new" or "existing") and
// a cluster secret file.
func (m *Member) Flags(initial, token, state, secret string) []string {
	return []string{"--name", m.Name, "--data-dir", m.DataDir,
		"--listen-peer-urls", "http://" + m.Peer, "--listen-client-urls", "http://" + m.Client,
		"--initial-cluster", initial, "--initial-cluster-token", token, "--initial-cluster-state", state,
		"--cluster-secret-file", secret}
}
