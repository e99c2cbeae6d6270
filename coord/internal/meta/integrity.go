package meta

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/record"
	pvfs "github.com/cockroachdb/pebble/vfs"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// corruptError names the file that failed a check.
type corruptError struct {
	path string
	what string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("coord: DataDir file %s is corrupt: %s", e.path, e.what)
}

func (e *corruptError) Unwrap() error { return errdefs.ErrCorrupt }

func corrupt(path, format string, args ...any) error {
	return &corruptError{path: path, what: fmt.Sprintf(format, args...)}
}

// snapshotDirName is the name dragonboat gives a finished snapshot's
// directory; those being written or received carry a suffix.
var snapshotDirName = regexp.MustCompile(`^snapshot-[0-9A-F]{16}$`)

// CheckRaftDir reads every file of dragonboat's directory that a restart
// depends on and checks it: its flag files (the NodeHost's ID and settings,
// each snapshot's metadata), each LogDB (its sstables' block checksums, its
// WAL records, its MANIFEST, and that the latest snapshot it records for
// each replica has its file) and each finished snapshot (header and block
// checksums, length). It returns an error wrapping errdefs.ErrCorrupt that names the
// first bad file, or another error when a file cannot be read at all. It
// reads the whole log and every snapshot once.
//
// What a check of files cannot see is a log cut at a record's boundary: it
// reads as a log that ends there. A member that lost acknowledged entries
// that way is stopped by its leader's first heartbeat (screen).
func CheckRaftDir(fsys vfs.FS, dir string) error {
	if _, err := fsys.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var logdbs, snaps, flags []string
	have := map[string]bool{} // "snapshot-<shard>-<replica>/snapshot-<index>" of each snapshot file
	var walk func(d string) error
	walk = func(d string) error {
		names, err := fsys.List(d)
		if err != nil {
			return err
		}
		sort.Strings(names)
		for _, name := range names {
			p := filepath.Join(d, name)
			st, err := fsys.Stat(p)
			if err != nil {
				return err
			}
			switch {
			case st.IsDir():
				if err := walk(p); err != nil {
					return err
				}
			case name == "CURRENT":
				logdbs = append(logdbs, d)
			case strings.HasSuffix(name, ".gbsnap") && snapshotDirName.MatchString(filepath.Base(d)):
				snaps = append(snaps, p)
				have[filepath.Join(filepath.Base(filepath.Dir(d)), filepath.Base(d))] = true
			case name == "NODEHOST.ID" || name == "dragonboat.ds" ||
				name == "snapshot.metadata" && snapshotDirName.MatchString(filepath.Base(d)):
				flags = append(flags, p)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return fmt.Errorf("coord: reading DataDir: %w", err)
	}
	for _, p := range flags {
		if err := checkFlagFile(fsys, p); err != nil {
			return err
		}
	}
	for _, d := range logdbs {
		latest, err := checkLogDB(fsys, d)
		if err != nil {
			return err
		}
		for _, ss := range latest {
			want := fmt.Sprintf("snapshot-%d-%d/snapshot-%016X", ss.ShardID, ss.replica, ss.Index)
			if !have[want] {
				return corrupt(d, "its latest snapshot of shard %d, at index %d, has no snapshot file (%s): the log is cut short or the snapshot removed", ss.ShardID-1, ss.Index, want)
			}
		}
	}
	for _, p := range snaps {
		if err := checkSnapshot(fsys, p); err != nil {
			return err
		}
	}
	return nil
}

// loggedSnapshot is the latest snapshot a LogDB records for a replica.
type loggedSnapshot struct {
	pb.Snapshot
	replica uint64
}

// snapshotKey is the prefix of dragonboat's LogDB keys of snapshot
// records: 2 bytes, 2 zero bytes, then the shard ID, replica ID and index,
// 8 bytes each, big-endian.
var snapshotKey = []byte{0x5, 0x5}

// checkLogDB checks one of dragonboat's LogDBs, a pebble database: every
// WAL, then the database opened read-only and read from end to end, which
// checks every block of every sstable against its checksum. It returns the
// latest snapshot it records for each replica that has one with a file,
// which dragonboat loads at start.
func checkLogDB(fsys vfs.FS, dir string) (latest []loggedSnapshot, err error) {
	names, err := fsys.List(dir)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		num, ok := strings.CutSuffix(name, ".log")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		if err := checkWAL(fsys, filepath.Join(dir, name), n); err != nil {
			return nil, err
		}
	}
	opts := &pebble.Options{ReadOnly: true, Logger: quietPebble{}}
	if fsys != vfs.Default {
		opts.FS = pebbleFS{fsys}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, pebbleError(dir, err)
	}
	defer db.Close()
	byReplica := map[[2]uint64]loggedSnapshot{}
	it := db.NewIter(nil)
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 28 || !bytes.HasPrefix(k, snapshotKey) {
			continue
		}
		var ss loggedSnapshot
		if err := ss.Unmarshal(it.Value()); err != nil {
			it.Close()
			return nil, corrupt(dir, "a snapshot record: %v", err)
		}
		if ss.Dummy || ss.Witness || ss.Index == 0 {
			continue
		}
		ss.ShardID, ss.replica = binary.BigEndian.Uint64(k[4:12]), binary.BigEndian.Uint64(k[12:20])
		id := [2]uint64{ss.ShardID, ss.replica}
		if ss.Index >= byReplica[id].Index {
			byReplica[id] = ss
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, pebbleError(dir, err)
	}
	for _, ss := range byReplica {
		latest = append(latest, ss)
	}
	return latest, nil
}

// pebbleError wraps an error of pebble's, which names the bad file within
// dir: a database that pebble cannot open read-only, or read to its end, is
// corrupt (a block that fails its checksum, an sstable that the MANIFEST
// lists missing or of another size, a malformed CURRENT or MANIFEST) unless
// this process may not read it.
func pebbleError(dir string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("coord: reading %s: %w", dir, err)
	}
	return corrupt(dir, "%v", err)
}

// checkWAL reads every record of a pebble WAL. A record that fails its
// checksum is the torn end of the last write before a crash, and harmless,
// if no whole record of this log follows it, in its block or a later one;
// one that does is corruption.
func checkWAL(fsys vfs.FS, path string, num uint64) error {
	b, err := ReadFile(fsys, path)
	if err != nil {
		return err
	}
	const block = 32 << 10 // pebble's WAL block
	bad, _ := walRecords(b, num)
	if bad < 0 {
		return nil
	}
	follows := corrupt(path, "a record at byte %d fails its checksum and records follow it", bad)
	// Look for a whole record later in the same block: at each offset that
	// starts like a chunk of this log (the first or only chunk of a record
	// in pebble's recyclable format, with this log's number), read from
	// there. A chunk found so is real only if its checksum holds.
	end := min((bad/block+1)*block, int64(len(b)))
	for off := bad + 1; off+walHeader <= end; off++ {
		if t := b[off+6]; (t == walFullChunk || t == walFirstChunk) && binary.LittleEndian.Uint32(b[off+7:]) == uint32(num) {
			if _, whole := walRecords(b[off:end], num); whole > 0 {
				return follows
			}
		}
	}
	// And in any later block: the reader skips a block's leading fragments
	// of a record that began before it.
	for off := end; off < int64(len(b)); off += block {
		if _, whole := walRecords(b[off:], num); whole > 0 {
			return follows
		}
	}
	return nil
}

// The chunk header of pebble's recyclable WAL format: a checksum (4 bytes),
// a length (2), a type (1) and the log's number (4); the types of a
// record's only chunk and of its first.
const (
	walHeader     = 11
	walFullChunk  = 5
	walFirstChunk = 6
)

// walRecords reads the records of a WAL numbered num from b. It returns
// the offset of the first record that fails its checks (-1 if none) and how
// many whole records it read before.
func walRecords(b []byte, num uint64) (bad int64, whole int) {
	r := record.NewReader(bytes.NewReader(b), pebble.FileNum(num))
	for {
		off := r.Offset()
		rec, err := r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		switch {
		case err == nil:
			whole++
		case err == io.EOF:
			return -1, whole
		default:
			return off, whole
		}
	}
}

// checkSnapshot reads through a snapshot file in dragonboat's format, one
// block at a time: a 1 KiB header holding a SnapshotHeader (with a CRC32 of
// itself), blocks of at most 2 MiB each followed by the CRC32 of its bytes,
// and a 16-byte tail of the blocks' total length and a magic number. The
// header also holds a CRC32 of the blocks' CRC32s, so a file cut at a
// block's end fails too.
func checkSnapshot(fsys vfs.FS, path string) error {
	f, err := fsys.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const headerSize, blockSize, tailSize = 1024, 2 << 20, 16
	size := st.Size()
	if size < headerSize+tailSize {
		return corrupt(path, "%d bytes, shorter than a header and a tail", size)
	}
	r := io.Reader(f)
	head := make([]byte, headerSize)
	if _, err := io.ReadFull(r, head); err != nil {
		return err
	}
	n := binary.LittleEndian.Uint64(head)
	if n > headerSize-8 {
		return corrupt(path, "header length %d", n)
	}
	var h pb.SnapshotHeader
	if err := h.Unmarshal(head[8 : 8+n]); err != nil {
		return corrupt(path, "header: %v", err)
	}
	sum := h.HeaderChecksum
	h.HeaderChecksum = nil
	data, err := h.Marshal()
	if err != nil {
		return corrupt(path, "header: %v", err)
	}
	if len(sum) > 0 && !bytes.Equal(sum, crc32Sum(data)) {
		return corrupt(path, "header checksum mismatch")
	}
	if h.ChecksumType != pb.CRC32IEEE {
		return corrupt(path, "unknown checksum type %d", h.ChecksumType)
	}
	if h.Version == 1 {
		c := crc32.NewIEEE()
		if _, err := io.Copy(c, r); err != nil {
			return err
		}
		if !bytes.Equal(h.PayloadChecksum, c.Sum(nil)) {
			return corrupt(path, "payload checksum mismatch")
		}
		return nil
	}
	if h.Version != 2 {
		return corrupt(path, "unknown snapshot version %d", h.Version)
	}
	payload := size - headerSize - tailSize
	sums := crc32.NewIEEE()
	blk := make([]byte, blockSize+4)
	for off := int64(0); off < payload; off += blockSize + 4 {
		b := blk[:min(blockSize+4, payload-off)]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		if len(b) <= 4 {
			return corrupt(path, "block at byte %d is cut short", headerSize+off)
		}
		crc := b[len(b)-4:]
		if !bytes.Equal(crc, crc32Sum(b[:len(b)-4])) {
			return corrupt(path, "block at byte %d fails its checksum", headerSize+off)
		}
		sums.Write(crc)
	}
	tail := make([]byte, tailSize)
	if _, err := io.ReadFull(r, tail); err != nil {
		return err
	}
	if !bytes.Equal(tail[8:], snapshotMagic) {
		return corrupt(path, "no end marker: the file is cut short or overwritten")
	}
	if total := binary.LittleEndian.Uint64(tail); total != uint64(payload) {
		return corrupt(path, "%d bytes of blocks, the tail says %d", payload, total)
	}
	if !bytes.Equal(h.PayloadChecksum, sums.Sum(nil)) {
		return corrupt(path, "payload checksum mismatch: blocks are missing")
	}
	return nil
}

// checkFlagFile checks one of dragonboat's small "flag" files: 8 bytes of
// an MD5 of the rest, then the rest.
func checkFlagFile(fsys vfs.FS, path string) error {
	b, err := ReadFile(fsys, path)
	if err != nil {
		return err
	}
	if len(b) < 8 {
		return corrupt(path, "%d bytes", len(b))
	}
	if sum := md5.Sum(b[8:]); !bytes.Equal(b[:8], sum[8:]) {
		return corrupt(path, "checksum mismatch")
	}
	return nil
}

// snapshotMagic ends every block-format snapshot file dragonboat writes.
var snapshotMagic = []byte{0x3F, 0x5B, 0xCB, 0xF1, 0xFA, 0xBA, 0x81, 0x9F}

func crc32Sum(b []byte) []byte {
	h := crc32.NewIEEE()
	h.Write(b)
	return h.Sum(nil)
}

// quietPebble drops pebble's log lines during a check.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Fatalf(string, ...any) {}

// pebbleFS lets pebble read a vfs.FS other than the operating system's (the
// in-memory filesystem of the power-loss tests). A check opens read-only:
// the writing methods are there for the interface.
type pebbleFS struct{ fs vfs.FS }

func (p pebbleFS) Create(name string) (pvfs.File, error) { return p.fs.Create(name) }
func (p pebbleFS) Link(o, n string) error                { return p.fs.Link(o, n) }
func (p pebbleFS) Open(name string, _ ...pvfs.OpenOption) (pvfs.File, error) {
	return p.fs.Open(name)
}
func (p pebbleFS) OpenDir(name string) (pvfs.File, error) { return p.fs.OpenDir(name) }
func (p pebbleFS) Remove(name string) error               { return p.fs.Remove(name) }
func (p pebbleFS) RemoveAll(name string) error            { return p.fs.RemoveAll(name) }
func (p pebbleFS) Rename(o, n string) error               { return p.fs.Rename(o, n) }
func (p pebbleFS) ReuseForWrite(o, n string) (pvfs.File, error) {
	return p.fs.ReuseForWrite(o, n)
}
func (p pebbleFS) MkdirAll(dir string, perm os.FileMode) error { return p.fs.MkdirAll(dir, perm) }
func (p pebbleFS) Lock(name string) (io.Closer, error)         { return p.fs.Lock(name) }
func (p pebbleFS) List(dir string) ([]string, error)           { return p.fs.List(dir) }
func (p pebbleFS) Stat(name string) (os.FileInfo, error)       { return p.fs.Stat(name) }
func (p pebbleFS) PathBase(path string) string                 { return p.fs.PathBase(path) }
func (p pebbleFS) PathJoin(elem ...string) string              { return p.fs.PathJoin(elem...) }
func (p pebbleFS) PathDir(path string) string                  { return p.fs.PathDir(path) }
func (p pebbleFS) GetDiskUsage(path string) (pvfs.DiskUsage, error) {
	du, err := p.fs.GetDiskUsage(path)
	return pvfs.DiskUsage{AvailBytes: du.AvailBytes, TotalBytes: du.TotalBytes, UsedBytes: du.UsedBytes}, err
}
