package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/election"
	"github.com/coordkit/coordkit/coord/lock"
	"github.com/coordkit/coordkit/coord/pubsub"
	"github.com/coordkit/coordkit/coord/registry"
)

// TestClassify covers every row of errorTable with errors wrapped the way
// coord wraps them, including the combinations where order matters.
func TestClassify(t *testing.T) {
	wrap := func(errs ...error) error {
		f := "coord: op"
		args := []any{}
		for _, e := range errs {
			f += ": %w"
			args = append(args, e)
		}
		return fmt.Errorf(f, args...)
	}
	for _, tc := range []struct {
		err     error
		status  int
		code    string
		unknown bool // message must say "outcome unknown"
	}{
		{wrap(coord.ErrEmptyKey), 400, "invalid_argument", false},
		{wrap(coord.ErrKeyTooLarge), 400, "invalid_argument", false},
		{wrap(coord.ErrValueTooLarge), 400, "invalid_argument", false},
		{wrap(coord.ErrRequestTooLarge), 400, "invalid_argument", false},
		{wrap(coord.ErrTooManyOps), 400, "invalid_argument", false},
		{wrap(coord.ErrDuplicateKey), 400, "invalid_argument", false},
		{wrap(coord.ErrCrossShard), 400, "invalid_argument", false},
		{wrap(coord.ErrInvalidOption), 400, "invalid_argument", false},
		{wrap(coord.ErrInvalidConfig), 400, "invalid_argument", false},
		{wrap(coord.ErrInvalidArgument), 400, "invalid_argument", false},
		{wrap(coord.ErrInvalidTTL), 400, "invalid_argument", false},
		{wrap(coord.ErrFutureRevision), 400, "invalid_argument", false},
		{wrap(coord.ErrLeaseNotFound), 404, "not_found", false},
		{wrap(coord.ErrMemberNotFound), 404, "not_found", false},
		{wrap(coord.ErrMemberExists), 409, "conflict", false},
		{wrap(coord.ErrNotEmpty), 409, "conflict", false},
		{errRestoreRunning, 409, "conflict", false},
		{wrap(coord.ErrBadBackup), 400, "invalid_argument", false},
		{wrap(coord.ErrBadBackup, coord.ErrKeyTooLarge), 400, "invalid_argument", false},
		{wrap(coord.ErrQuorum), 412, "failed_precondition", false},
		{wrap(coord.ErrCompacted), 410, "compacted", false},
		{wrap(coord.ErrNoSpace), 507, "no_space", false},
		{wrap(coord.ErrClosed), 503, "unavailable", false},
		{coord.ErrClosed, 503, "unavailable", false},
		{wrap(coord.ErrNoLeader, context.DeadlineExceeded), 503, "no_quorum", false},
		{wrap(context.DeadlineExceeded, coord.ErrNoLeader), 503, "no_quorum", false},
		{wrap(context.DeadlineExceeded), 504, "timeout", false},
		{wrap(coord.ErrOutcomeUnknown, context.DeadlineExceeded), 504, "timeout", true},
		{wrap(context.Canceled), 503, "unavailable", false},
		{wrap(coord.ErrOutcomeUnknown, context.Canceled), 503, "unavailable", true},
		{wrap(coord.ErrOutcomeUnknown, coord.ErrClosed), 503, "unavailable", true},
		{wrap(coord.ErrOutcomeUnknown), 503, "unavailable", true},
		{wrap(coord.ErrClosed, context.Canceled), 503, "unavailable", false},
		{errors.New("disk on fire"), 500, "internal", false},
		{errPrefixAndRangeEnd, 400, "invalid_argument", false},
		// Held resources read as lost whatever ended them.
		{wrap(lock.ErrLost, coord.ErrClosed), 409, "lost", false},
		{wrap(lock.ErrLost, coord.ErrCompacted), 409, "lost", false},
		{wrap(lock.ErrLost, coord.ErrSessionExpired, coord.ErrNoLeader, context.DeadlineExceeded), 409, "lost", false},
		{wrap(election.ErrLost, context.Canceled), 409, "lost", false},
		{wrap(coord.ErrSessionExpired, coord.ErrLeaseNotFound), 409, "lost", false},
		{wrap(errLost, errReleased), 409, "lost", false},
		{wrap(errCompareFailed), 409, "compare_failed", false},
		{lock.ErrLocked, 409, "locked", false},
		{wrap(errWaitExpired), 409, "locked", false},
		{election.ErrNoLeader, 404, "no_leader", false},
		{&pubsub.OutOfRangeError{Requested: 1, Earliest: 2048}, 410, "out_of_range", false},
		{wrap(errTooManyStreams), 503, "too_many_streams", false},
		{errUnauthenticated, 401, "unauthenticated", false},
		{wrap(registry.ErrInvalid), 400, "invalid_argument", false},
		{errors.Join(pubsub.ErrInvalid, errors.New("pubsub: choose one")), 400, "invalid_argument", false},
		{wrap(errNotHeld), 404, "not_found", false},
		{wrap(lock.ErrNotHeld), 404, "not_found", false},
		{election.ErrNotLeader, 404, "not_found", false},
	} {
		status, code, msg := classify(tc.err)
		if status != tc.status || code != tc.code || !strings.Contains(msg, tc.err.Error()) ||
			strings.Contains(msg, "outcome unknown") != tc.unknown {
			t.Errorf("classify(%v) = %d %s %q, want %d %s (outcome unknown in message: %v)", tc.err, status, code, msg, tc.status, tc.code, tc.unknown)
		}
	}
}

// TestReplicaIDsAreDecimalStrings: IDs above 2^53 must survive JSON.
func TestReplicaIDsAreDecimalStrings(t *testing.T) {
	b, err := json.Marshal(toMember(coord.Member{Name: "a", ID: math.MaxUint64}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"a","id":"18446744073709551615","address":"","voter":false,"leads":[],"reachable":false}`
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	var back member
	if err := json.Unmarshal(b, &back); err != nil || back.ID != math.MaxUint64 {
		t.Fatalf("round trip: %+v %v", back, err)
	}
}

// TestOutOfRangeNamesTheEarliestOffset: the error object of out_of_range
// carries "earliest", 0 included; other errors do not have the field.
func TestOutOfRangeNamesTheEarliestOffset(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("subscribe: %w", &pubsub.OutOfRangeError{Requested: 1, Earliest: 4096}), `"earliest":4096`},
		{&pubsub.OutOfRangeError{Requested: 1}, `"earliest":0`},
		{coord.ErrCompacted, ""},
	} {
		_, d := detail(tc.err)
		b, err := json.Marshal(errorBody{Error: d})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(b), `"earliest"`); got != (tc.want != "") || !strings.Contains(string(b), tc.want) {
			t.Errorf("%v: %s, want %s", tc.err, b, tc.want)
		}
	}
}
