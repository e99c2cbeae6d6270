package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/coordkit/coordkit/coord"
)

// Error codes of the contract's error body {"error":{"code","message"}}.
const (
	codeInvalidArgument    = "invalid_argument"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeConflict           = "conflict"
	codePayloadTooLarge    = "payload_too_large"
	codeFailedPrecondition = "failed_precondition"
	codeCompacted          = "compacted"
	codeNoQuorum           = "no_quorum"
	codeUnavailable        = "unavailable"
	codeTimeout            = "timeout"
	codeInternal           = "internal"
)

// errorTable maps coord's errors to HTTP, first match wins. The order
// matters where one error wraps several sentinels: ErrNoLeader comes wrapped
// with context.DeadlineExceeded and must read as no_quorum, not timeout;
// ErrClosed must win over the context error of a call cut off by Close.
var errorTable = []struct {
	target error
	status int
	code   string
}{
	{coord.ErrNoLeader, http.StatusServiceUnavailable, codeNoQuorum},
	{coord.ErrEmptyKey, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrKeyTooLarge, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrValueTooLarge, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrRequestTooLarge, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrTooManyOps, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrDuplicateKey, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrCrossShard, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidOption, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidConfig, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrInvalidTTL, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrFutureRevision, http.StatusBadRequest, codeInvalidArgument},
	{coord.ErrLeaseNotFound, http.StatusNotFound, codeNotFound},
	{coord.ErrMemberNotFound, http.StatusNotFound, codeNotFound},
	{coord.ErrMemberExists, http.StatusConflict, codeConflict},
	{coord.ErrQuorum, http.StatusPreconditionFailed, codeFailedPrecondition},
	{coord.ErrCompacted, http.StatusGone, codeCompacted},
	{coord.ErrClosed, http.StatusServiceUnavailable, codeUnavailable},
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
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

func writeCoordError(w http.ResponseWriter, err error) {
	status, code, msg := classify(err)
	writeError(w, status, code, msg)
}
