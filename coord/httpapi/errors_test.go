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
		{wrap(coord.ErrInvalidTTL), 400, "invalid_argument", false},
		{wrap(coord.ErrFutureRevision), 400, "invalid_argument", false},
		{wrap(coord.ErrLeaseNotFound), 404, "not_found", false},
		{wrap(coord.ErrMemberNotFound), 404, "not_found", false},
		{wrap(coord.ErrMemberExists), 409, "conflict", false},
		{wrap(coord.ErrQuorum), 412, "failed_precondition", false},
		{wrap(coord.ErrCompacted), 410, "compacted", false},
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
