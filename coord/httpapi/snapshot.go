package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coordkit/coordkit/coord"
)

// snapshot streams a backup written by coord.Node.Snapshot.
func (a *api) snapshot(w http.ResponseWriter, r *http.Request) {
	sw := &snapshotWriter{w: w, rc: http.NewResponseController(w), http1: r.ProtoMajor == 1, timeout: a.writeTimeout}
	// No request body: the client only reads from here on (see postStream).
	_ = sw.rc.SetReadDeadline(time.Time{})
	err := a.n.Snapshot(r.Context(), sw)
	switch {
	case err == nil:
	case !sw.started:
		writeCoordError(w, err)
	default:
		// The status is sent: abort the response, so that the client sees
		// a broken transfer rather than a complete-looking partial backup.
		// net/http documents this panic value for this purpose.
		panic(http.ErrAbortHandler)
	}
}

// snapshotWriter sends the status on the first write and bounds every write
// by the stream write timeout.
type snapshotWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	http1   bool
	timeout time.Duration
	started bool
}

func (s *snapshotWriter) Write(p []byte) (int, error) {
	if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Disposition", `attachment; filename="coordkit.backup"`)
		if s.http1 {
			h.Set("Connection", "close") // see stream.writeLine
		}
		s.w.WriteHeader(http.StatusOK)
	}
	return s.w.Write(p)
}

// restore loads the backup in the request body into the cluster
// (coord.Node.Restore). The body goes to Restore as it arrives, bounded by
// restoreLimit, every read by the stream write timeout; the handler keeps
// no copy of it. One restore runs at a time per handler.
func (a *api) restore(w http.ResponseWriter, r *http.Request) {
	if !a.restoring.CompareAndSwap(false, true) {
		writeCoordError(w, errRestoreRunning)
		return
	}
	defer a.restoring.Store(false)
	limit, err := a.restoreLimit(r.Context())
	if err != nil {
		writeCoordError(w, err)
		return
	}
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, codePayloadTooLarge, restoreTooLarge(limit))
		return
	}
	// Refuse a cluster with keys before taking a whole backup in; Restore
	// checks again once it has read it.
	g, err := a.n.Get(r.Context(), "\x00", coord.WithFromKey(), coord.WithCountOnly())
	if err == nil && g.Count > 0 {
		err = fmt.Errorf("%w: it holds %d keys; restore into a new cluster", coord.ErrNotEmpty, g.Count)
	}
	if err != nil {
		writeCoordError(w, err)
		return
	}
	body := &uploadReader{r: http.MaxBytesReader(w, r.Body, limit), rc: http.NewResponseController(w), timeout: a.writeTimeout}
	// The client going away ends the upload, and so the restore, before
	// anything is written (Restore verifies the whole backup first). Once
	// the backup is in, the restore runs to its end whatever the client
	// does, so that a client giving up never leaves a half-restored cluster.
	res, err := a.n.Restore(context.WithoutCancel(r.Context()), body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(body.err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, codePayloadTooLarge, restoreTooLarge(limit))
	case body.err != nil && !errors.Is(body.err, io.EOF):
		writeError(w, http.StatusBadRequest, codeInvalidArgument, "receiving the backup: "+body.err.Error()+"; nothing was restored")
	case err != nil:
		writeCoordError(w, err)
	default:
		writeJSON(w, http.StatusOK, restoreResponse{Keys: res.Keys, SkippedLease: res.SkippedLease})
	}
}

type restoreResponse struct {
	Keys         int `json:"keys"`
	SkippedLease int `json:"skipped_lease"`
}

func restoreTooLarge(limit int64) string {
	return fmt.Sprintf("backup larger than %d bytes, the most this member takes (MaxRestoreBytes, and what the shards' quota can hold)", limit)
}

// restoreLimit is the most a backup sent for restore may weigh: what the
// cluster's quota can hold, bounded by MaxRestoreBytes (DefaultMaxRestoreBytes
// without a quota). A backup carries each key and value in base64, 4/3 of
// their bytes, with less framing than the quota counts per version
// (coord.Config.MaxStoreBytes); one past 4/3 of every shard's quota, plus
// a request's worth each, could not be written.
func (a *api) restoreLimit(ctx context.Context) (int64, error) {
	st, err := a.n.Status(ctx)
	if err != nil {
		return 0, err
	}
	limit := a.maxRestore
	if q := st.MaxStoreBytes; q > 0 && q < 1<<40 {
		fit := int64(len(st.Shards))*((q+4<<20)/3*4) + 64<<10
		if limit == 0 || fit < limit {
			limit = fit
		}
	}
	if limit == 0 {
		limit = DefaultMaxRestoreBytes
	}
	return limit, nil
}

// uploadReader reads a restore's body: every read must make progress
// within timeout, so that a client that stalls is cut off, as one that
// stops reading a stream is. At the end of the body it lifts the deadline,
// which would otherwise end the connection (and the answer) while the
// restore runs. err is the first error read, io.EOF at the end.
type uploadReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

func (u *uploadReader) Read(p []byte) (int, error) {
	if u.err != nil {
		return 0, u.err
	}
	_ = u.rc.SetReadDeadline(time.Now().Add(u.timeout))
	n, err := u.r.Read(p)
	if err != nil {
		u.err = err
		_ = u.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
