package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/election"
	"github.com/coordkit/coordkit/coord/lock"
	"github.com/coordkit/coordkit/coord/pubsub"
	"github.com/coordkit/coordkit/coord/registry"
)

// Error codes of the contract's error body {"error":{"code","message"}}.
const (
	codeInvalidArgument    = "invalid_argument"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeConflict           = "conflict"
	codeCompareFailed      = "compare_failed"
	codeLocked             = "locked"
	codeLost               = "lost"
	codeNoLeader           = "no_leader"
	codePayloadTooLarge    = "payload_too_large"
	codeFailedPrecondition = "failed_precondition"
	codeCompacted          = "compacted"
	codeOutOfRange         = "out_of_range"
	codeUnauthenticated    = "unauthenticated"
	codeTooManyStreams     = "too_many_streams"
	codeNoQuorum           = "no_quorum"
	codeNoSpace            = "no_space"
	codeCorrupt            = "corrupt"
	codeUnavailable        = "unavailable"
	codeTimeout            = "timeout"
	codeInternal           = "internal"
)

// Errors of this package, for conditions coord and the primitives do not
// name themselves. Each has a row in errorTable.
var (
	// errCompareFailed: a conditional put or delete found another
	// mod_revision.
	errCompareFailed = errors.New("httpapi: compare failed")
	// errLost: a held resource (lock, leadership, registration) ended while
	// its stream was open.
	errLost = errors.New("httpapi: lost")
	// errNotHeld: no lock or candidacy is held under the lease named, on
	// this handler.
	errNotHeld = errors.New("httpapi: not held here")
	// errTooManyStreams: MaxStreams streams are open.
	errTooManyStreams = errors.New("httpapi: too many open streams")
	// errUnauthenticated: BearerToken is set and the request does not carry it.
	errUnauthenticated = errors.New("httpapi: missing or wrong bearer token")
	// errWaitExpired: a lock acquire's wait_ms ran out.
	errWaitExpired = errors.New("httpapi: lock still held when wait_ms ran out")
	// errRestoreRunning: a restore is running on this handler already.
	errRestoreRunning = errors.New("httpapi: a restore is already running on this member")
)

// errorTable maps errors to HTTP, first match wins. The order matters where
// one error wraps several sentinels:
//   - a held resource that ended reads as lost whatever caused it: lock.ErrLost
//     wraps ErrClosed or ErrCompacted, and a session that could not be renewed
//     wraps ErrNoLeader;
//   - ErrNoLeader comes wrapped with context.DeadlineExceeded and must read as
//     no_quorum, not timeout;
//   - ErrClosed must win over the context error of a call cut off by Close.
var errorTable = []struct {
	target error
	status int
	code   string
}{
	{errLost, http.StatusConflict, codeLost},
	{lock.ErrLost, http.StatusConflict, codeLost},
	{election.ErrLost, http.StatusConflict, codeLost},
	{coord.ErrSessionExpired, http.StatusConflict, codeLost},
	{coord.ErrNoLeader, http.StatusServiceUnavailable, codeNoQuorum},
	{errUnauthenticated, http.StatusUnauthorized, codeUnauthenticated},
	{errTooManyStreams, http.StatusServiceUnavailable, codeTooManyStreams},
	{errCompareFailed, http.StatusConflict, codeCompareFailed},
	{lock.ErrLocked, http.StatusConflict, codeLocked},
	{errWaitExpired, http.StatusConflict, codeLocked},
	{election.ErrNoLeader, http.StatusNotFound, codeNoLeader},
	{pubsub.ErrOffsetOutOfRange, http.StatusGone, codeOutOfRange},
	{coord.ErrEmptyKey, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrKeyTooLarge, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrValueTooLarge, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrRequestTooLarge, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrTooManyOps, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrDuplicateKey, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrCrossShard, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidOption, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidConfig, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidArgument, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidTTL, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrFutureRevision, http.StatusBadRequest, codeInvalidArgument},
	{registry.ErrInvalid, http.StatusBadRequest, codeInvalidArgument},
	{pubsub.ErrInvalid, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrLeaseNotFound, http.StatusNotFound, codeNotFound},
	{coord.ErrMemberNotFound, http.StatusNotFound, codeNotFound},
	{errNotHeld, http.StatusNotFound, codeNotFound},
	{lock.ErrNotHeld, http.StatusNotFound, codeNotFound},
	{election.ErrNotLeader, http.StatusNotFound, codeNotFound},
	{coord.ErrMemberExists, http.StatusConflict, codeConflict},
	{coord.ErrNotEmpty, http.StatusConflict, codeConflict},
	{errRestoreRunning, http.StatusConflict, codeConflict},
	{coord.ErrBadBackup, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrQuorum, http.StatusPreconditionFailed, codeFailedPrecondition},
	{coord.ErrCompacted, http.StatusGone, codeCompacted},
	// Refused before it was proposed: another member may take it.
	{coord.ErrNoSpace, http.StatusInsufficientStorage, codeNoSpace},
	{coord.ErrCorruptAlarm, http.StatusServiceUnavailable, codeCorrupt},
	{coord.ErrClosed, http.StatusServiceUnavailable, codeUnavailable},
	{ErrShuttingDown, http.StatusServiceUnavailable, codeUnavailable},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, codeTimeout},
	// The client went away (or the server is shutting down): nobody reads
	// the answer, but a proxy in between may log it.
	{context.Canceled, http.StatusServiceUnavailable, codeUnavailable},
	// A write cut off without a context error (the Node closing under it).
	{coord.ErrOutcomeUnknown, http.StatusServiceUnavailable, codeUnavailable},
}

// classify maps an error returned by coord to an HTTP status, an error code
// and a message. Anything it does not know is a 500.
func classify(err error) (status int, code, msg string) {
	status, code = http.StatusInternalServerError, codeInternal
	for _, e := range errorTable {
		if errors.Is(err, e.target) {
			status, code = e.status, e.code
			break
		}
	}
	msg = err.Error()
	if errors.Is(err, coord.ErrOutcomeUnknown) {
		msg = "outcome unknown: the write may or may not have been applied; read the key to learn which: " + msg
	}
	return status, code, msg
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Earliest is the oldest offset a topic still holds, on out_of_range.
	Earliest *int64 `json:"earliest,omitempty"`
}

// detail is the error object for err, as an HTTP body or a stream's last
// line.
func detail(err error) (int, errorDetail) {
	status, code, msg := classify(err)
	d := errorDetail{Code: code, Message: msg}
	var oor *pubsub.OutOfRangeError
	if errors.As(err, &oor) {
		earliest := int64(oor.Earliest)
		d.Earliest = &earliest
	}
	return status, d
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

func writeCoordError(w http.ResponseWriter, err error) {
	status, d := detail(err)
	writeJSON(w, status, errorBody{Error: d})
}
