// Package meta keeps what a member stores in its DataDir besides
// dragonboat's files, and checks dragonboat's before they are used:
//
//   - the member file (FileName): the member's identity and its cluster's,
//     so that a restart needs only the DataDir, written atomically and
//     durably with a checksum (Load, Save);
//   - the cluster secret a member that founds a cluster alone generates
//     (ClusterKey);
//   - CheckRaftDir, which reads every file of dragonboat's directory and
//     checks what can be checked (checksums, lengths, the LogDB's record of
//     its snapshots) before dragonboat opens it, so that a corrupt file is
//     reported by name instead of ending the process or being trusted;
//   - durable file helpers (WriteFileSynced, MkdirAllSynced).
//
// Every function takes the filesystem that holds DataDir (a test's, or
// vfs.Default). Errors about file contents wrap errdefs.ErrCorrupt and name
// the file.
package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/lni/vfs"
)

// FileName is the member file's name in DataDir.
const FileName = "coordkit-member.json"

// Member is what a member remembers about itself and its cluster, so a
// restart needs only the DataDir.
type Member struct {
	Version      int    `json:"version"`
	Name         string `json:"name"`
	ReplicaID    uint64 `json:"replica_id"`
	ClusterToken string `json:"cluster_token"`
	Shards       int    `json:"shards"`
	RaftAddress  string `json:"raft_address"`
	Joined       bool   `json:"joined,omitempty"`
	Observer     bool   `json:"observer,omitempty"` // the role it last started in
	Seeded       bool   `json:"seeded,omitempty"`   // admitted through JoinSeeds
	// LogDBShards is dragonboat's LogDB shard count, part of its on-disk
	// format with the step worker count (engineConfig of Shards): 1 for
	// DataDirs created since it was recorded; when absent, both are
	// dragonboat's defaults (16), used before.
	LogDBShards uint64          `json:"logdb_shards,omitempty"`
	Members     map[string]Peer `json:"members"`
	// Checksum guards the rest (sum): a bit flipped in a replica ID would
	// still be valid JSON. Version 1 files have none.
	Checksum string `json:"checksum,omitempty"`
}

type Peer struct {
	ReplicaID uint64 `json:"replica_id"`
	Address   string `json:"address"`
}

// Founders assigns Raft replica IDs from the sorted names, so every
// founding member derives the same IDs from the same InitialCluster.
func Founders(ic map[string]string) map[string]Peer {
	names := make([]string, 0, len(ic))
	for n := range ic {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make(map[string]Peer, len(names))
	for i, n := range names {
		out[n] = Peer{ReplicaID: uint64(i + 1), Address: ic[n]}
	}
	return out
}

// JoinedReplicaID derives the Raft replica ID of a member added at run time
// from what both AddMember and the joining member know. Founders use 1..N;
// these IDs are above 2^32. A removed ID is never reused: AddMember refuses
// a name and address whose ID was removed.
func JoinedReplicaID(token, name, addr string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(addr))
	return h.Sum64()>>1 | 1<<32
}

// Load reads the member file in dir: nil, nil when there is none (a new
// DataDir); an error wrapping ErrCorrupt, naming the file, when it cannot
// be trusted (not JSON, a checksum that does not match, an unknown version,
// no replica ID or shard count).
func Load(fsys vfs.FS, dir string) (*Member, error) {
	path := filepath.Join(dir, FileName)
	b, err := ReadFile(fsys, path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := &Member{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, corrupt(path, "%v", err)
	}
	switch {
	case m.Version == 1 && m.Checksum == "": // written before the checksum
	case m.Version == Version:
		if sum := m.sum(); m.Checksum != sum {
			return nil, corrupt(path, "checksum %q, content sums to %q", m.Checksum, sum)
		}
	default:
		return nil, corrupt(path, "unsupported version %d", m.Version)
	}
	if m.ReplicaID == 0 || m.Shards <= 0 {
		return nil, corrupt(path, "no replica ID or shard count")
	}
	return m, nil
}

// Version is the member file's format: version 2 holds a checksum.
const Version = 2

// sum is the checksum of m's content: a CRC-32C of its JSON encoding
// without the checksum, in hex.
func (m *Member) sum() string {
	c := *m
	c.Checksum = ""
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err) // a struct of strings, numbers and maps
	}
	return fmt.Sprintf("%08x", crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// Save writes atomically: a crash leaves the old file or the new one.
// It writes the current version, with m's checksum.
func Save(fsys vfs.FS, dir string, m *Member) error {
	m.Version = Version
	m.Checksum = m.sum()
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileSynced(fsys, dir, FileName, b, 0o666)
}

// WriteFileSynced replaces dir/name with data atomically and durably: the
// file and the directory entry are synced before it returns. perm applies
// on the operating system's filesystem (vfs.Default) only.
func WriteFileSynced(fsys vfs.FS, dir, name string, data []byte, perm os.FileMode) error {
	tmp := filepath.Join(dir, name+".tmp")
	var f vfs.File
	var err error
	if fsys == vfs.Default {
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm) // perm, less the umask
	} else {
		f, err = fsys.Create(tmp)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MkdirAllSynced is MkdirAll, made durable: each directory it creates is
// synced into its parent, or a power loss soon after could take DataDir,
// and everything acknowledged from it, away.
func MkdirAllSynced(fsys vfs.FS, dir string, perm os.FileMode) error {
	// The directories missing, from dir up to the first that exists (the
	// root, or ".", always does).
	var missing []string
	for d := filepath.Clean(dir); filepath.Dir(d) != d; d = filepath.Dir(d) {
		if _, err := fsys.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range missing {
		p, err := fsys.OpenDir(filepath.Dir(d))
		if err != nil {
			return err
		}
		err = p.Sync()
		p.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// ReadFile is os.ReadFile on fsys.
func ReadFile(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
