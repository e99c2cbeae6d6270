package raftnode

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/lni/vfs"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// A failed write or sync of dragonboat's files must not reach dragonboat.
// pebble answers a failed write or sync of its write-ahead log with its
// logger's Fatalf, which dragonboat turns into a panic on whichever of its
// goroutines asked, and a panic there ends the host process; after a
// failed fsync the kernel may also have dropped the pages it could not
// write, so nothing written since the last good sync can be trusted (the
// reason PostgreSQL and etcd stop on one). So the member stops instead,
// and the call that failed never returns: dragonboat never learns that
// the entries were "written", so it neither acknowledges them to the
// leader nor applies them, and no caller is told that a write it could
// not keep succeeded. The goroutine that asked, and what waits on it
// (the shard's step worker), stay blocked for the life of the process,
// which must be restarted to reopen the member once its disk is mended.
//
// dragonboat accepts only three kinds of filesystem for its log (the
// operating system's, and vfs's in-memory and error-injecting ones), so
// diskFS sits inside a vfs.ErrorFS that injects nothing. With an
// ErrorFS, dragonboat also recovers a panic of its step workers instead
// of ending the process; coordkit's logger reports those (dbLog.Panicf).

// diskFS passes every call through to its inner filesystem and watches
// the writes to dragonboat's directory (dir): the first one that fails,
// once armed, calls failed with an error naming the file and the
// operation, and blocks the calling goroutine for good. Until armed (while
// the NodeHost opens), failures are returned as they are, and Start
// reports them. Writes to other files (coordkit's own, in DataDir) are
// passed through: their callers report their errors.
type diskFS struct {
	vfs.FS
	dir    string
	armed  atomic.Bool
	failed func(error)
}

// newDiskFS returns the filesystem dragonboat is given: inner (nil for the
// operating system's), watched under dir.
func newDiskFS(inner vfs.FS, dir string, failed func(error)) (*vfs.ErrorFS, *diskFS) {
	if inner == nil {
		inner = vfs.Default
	}
	d := &diskFS{FS: inner, dir: filepath.Clean(dir) + string(filepath.Separator), failed: failed}
	return vfs.Wrap(d, injectNothing{}), d
}

type injectNothing struct{}

func (injectNothing) MaybeError(vfs.Op) error { return nil }

// blockForever is where a goroutine whose write failed stays, for the
// life of the process.
func blockForever() { select {} }

// check returns err, or, when err is a failure of the disk under dir and
// the filesystem is armed, stops the member and never returns.
func (d *diskFS) check(op, name string, err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrExist) ||
		!d.armed.Load() || !strings.HasPrefix(filepath.Clean(name), d.dir) {
		return err
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		err = &fs.PathError{Op: op, Path: name, Err: err}
	}
	d.failed(err)
	blockForever()
	return err
}

func (d *diskFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &diskFile{File: f, fs: d, name: name}, nil
}

// Create implements vfs.FS.
func (d *diskFS) Create(name string) (vfs.File, error) {
	f, err := d.FS.Create(name)
	return d.wrap(name, f, d.check("create", name, err))
}

// Open implements vfs.FS.
func (d *diskFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := d.FS.Open(name, opts...)
	return d.wrap(name, f, err)
}

// OpenForAppend implements vfs.FS.
func (d *diskFS) OpenForAppend(name string) (vfs.File, error) {
	f, err := d.FS.OpenForAppend(name)
	return d.wrap(name, f, d.check("open", name, err))
}

// OpenDir implements vfs.FS: a directory is synced to make the files in it
// durable.
func (d *diskFS) OpenDir(name string) (vfs.File, error) {
	f, err := d.FS.OpenDir(name)
	return d.wrap(name, f, err)
}

// ReuseForWrite implements vfs.FS.
func (d *diskFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname)
	return d.wrap(newname, f, d.check("reuse", newname, err))
}

// Link implements vfs.FS.
func (d *diskFS) Link(oldname, newname string) error {
	return d.check("link", newname, d.FS.Link(oldname, newname))
}

// Rename implements vfs.FS.
func (d *diskFS) Rename(oldname, newname string) error {
	return d.check("rename", newname, d.FS.Rename(oldname, newname))
}

// MkdirAll implements vfs.FS.
func (d *diskFS) MkdirAll(dir string, perm os.FileMode) error {
	return d.check("mkdir", dir, d.FS.MkdirAll(dir, perm))
}

// diskFile is a file of a diskFS: its writes and syncs are watched.
type diskFile struct {
	vfs.File
	fs   *diskFS
	name string
}

var _ io.WriterAt = (*diskFile)(nil)

func (f *diskFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	return n, f.fs.check("write", f.name, err)
}

func (f *diskFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	return n, f.fs.check("write", f.name, err)
}

func (f *diskFile) Sync() error {
	return f.fs.check("sync", f.name, f.File.Sync())
}

// diskFailure is the error a member stops with when its disk failed.
func diskFailure(dataDir string, err error) error {
	return fmt.Errorf("%w: %w (DataDir %s): nothing this member wrote since its last good sync can be trusted; it stopped, and its process must be restarted once the disk is mended",
		errdefs.ErrDiskFailure, err, dataDir)
}
