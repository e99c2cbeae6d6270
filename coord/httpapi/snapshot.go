package httpapi

import (
	"errors"
	"net/http"
	"time"
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
