package raftnode

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lni/dragonboat/v4"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// Every error dragonboat's package exports has a class here, and this
// table is checked against dragonboat's source: an error added by a newer
// dragonboat fails the test until it is classified.
var dragonboatErrors = map[string]struct {
	err   error
	class class
}{
	"ErrClosed":                  {dragonboat.ErrClosed, classClosed},
	"ErrReplicaRemoved":          {dragonboat.ErrReplicaRemoved, classOther},
	"ErrShardNotFound":           {dragonboat.ErrShardNotFound, classClosed},
	"ErrShardAlreadyExist":       {dragonboat.ErrShardAlreadyExist, classOther},
	"ErrShardNotStopped":         {dragonboat.ErrShardNotStopped, classOther},
	"ErrInvalidShardSettings":    {dragonboat.ErrInvalidShardSettings, classOther},
	"ErrShardNotBootstrapped":    {dragonboat.ErrShardNotBootstrapped, classOther},
	"ErrDeadlineNotSet":          {dragonboat.ErrDeadlineNotSet, classNoTime},
	"ErrInvalidDeadline":         {dragonboat.ErrInvalidDeadline, classNoTime},
	"ErrDirNotExist":             {dragonboat.ErrDirNotExist, classOther},
	"ErrLogDBNotCreatedOrClosed": {dragonboat.ErrLogDBNotCreatedOrClosed, classOther},
	"ErrInvalidRange":            {dragonboat.ErrInvalidRange, classOther},
	"ErrInvalidOption":           {dragonboat.ErrInvalidOption, classOther},
	"ErrInvalidOperation":        {dragonboat.ErrInvalidOperation, classOther},
	"ErrInvalidAddress":          {dragonboat.ErrInvalidAddress, classOther},
	"ErrInvalidSession":          {dragonboat.ErrInvalidSession, classOther},
	"ErrTimeoutTooSmall":         {dragonboat.ErrTimeoutTooSmall, classNoTime},
	"ErrPayloadTooBig":           {dragonboat.ErrPayloadTooBig, classTooLarge},
	"ErrSystemBusy":              {dragonboat.ErrSystemBusy, classDropped},
	"ErrShardClosed":             {dragonboat.ErrShardClosed, classClosed},
	"ErrShardNotInitialized":     {dragonboat.ErrShardNotInitialized, classDropped},
	"ErrTimeout":                 {dragonboat.ErrTimeout, classTimedOut},
	"ErrCanceled":                {dragonboat.ErrCanceled, classCanceled},
	"ErrRejected":                {dragonboat.ErrRejected, classRefused},
	"ErrAborted":                 {dragonboat.ErrAborted, classRefused},
	"ErrShardNotReady":           {dragonboat.ErrShardNotReady, classDropped},
	"ErrInvalidTarget":           {dragonboat.ErrInvalidTarget, classOther},
	"ErrNoSnapshot":              {dragonboat.ErrNoSnapshot, classOther},
}

func TestEveryDragonboatErrorIsClassified(t *testing.T) {
	for name, e := range dragonboatErrors {
		if got := classify(e.err); got != e.class {
			t.Errorf("%s: class %d, want %d", name, got, e.class)
		}
		if got := classify(fmt.Errorf("wrapped: %w", e.err)); got != e.class {
			t.Errorf("%s, wrapped: class %d, want %d", name, got, e.class)
		}
	}
	if got := classify(errLeaderChanged); got != classTimedOut {
		t.Errorf("errLeaderChanged: class %d, want classTimedOut", got)
	}
	// The table against dragonboat's source.
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/lni/dragonboat/v4").Output()
	if err != nil {
		t.Skipf("go list dragonboat: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("dragonboat's source: %v", err)
	}
	exported := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if !id.IsExported() || !strings.HasPrefix(id.Name, "Err") {
						continue
					}
					exported++
					if _, ok := dragonboatErrors[id.Name]; !ok {
						t.Errorf("dragonboat.%s (%s) has no class in this table", id.Name, filepath.Base(f))
					}
				}
			}
		}
	}
	if exported != len(dragonboatErrors) {
		t.Errorf("dragonboat exports %d errors, the table has %d", exported, len(dragonboatErrors))
	}
}

// translate decides, in one table, what each of dragonboat's request errors
// means to a caller: a timeout or a cancellation of a write leaves its
// outcome unknown, of a read it is just the context's error; a closed or
// missing shard is ErrClosed; a full or leaderless shard, once the deadline
// passed, is ErrNoLeader; and every result still satisfies errors.Is with
// the context error a caller matches. Only the errors of requests dropped
// before they entered the log are retried after a backoff.
func TestTranslateAndRetryable(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		write bool
		is    []error // the result must be each of these
		not   []error // and none of these
		retry bool
	}{
		{"write timeout", context.Background(), dragonboat.ErrTimeout, true, []error{errdefs.ErrOutcomeUnknown, context.DeadlineExceeded}, nil, false},
		{"read timeout", context.Background(), dragonboat.ErrTimeout, false, []error{context.DeadlineExceeded}, []error{errdefs.ErrOutcomeUnknown}, false},
		{"write canceled by its context", canceled, dragonboat.ErrCanceled, true, []error{errdefs.ErrOutcomeUnknown, context.Canceled}, nil, false},
		{"read canceled", canceled, dragonboat.ErrCanceled, false, []error{context.Canceled}, []error{errdefs.ErrOutcomeUnknown}, false},
		{"write aborted", context.Background(), dragonboat.ErrAborted, true, []error{errdefs.ErrOutcomeUnknown}, nil, false},
		{"read rejected", context.Background(), dragonboat.ErrRejected, false, nil, []error{errdefs.ErrOutcomeUnknown, errdefs.ErrClosed}, false},
		{"closed", context.Background(), dragonboat.ErrClosed, true, []error{errdefs.ErrClosed}, []error{errdefs.ErrOutcomeUnknown}, false},
		{"shard closed", context.Background(), dragonboat.ErrShardClosed, false, []error{errdefs.ErrClosed}, nil, false},
		{"shard not found", context.Background(), dragonboat.ErrShardNotFound, false, []error{errdefs.ErrClosed}, nil, false},
		{"payload too big", context.Background(), dragonboat.ErrPayloadTooBig, true, []error{errdefs.ErrRequestTooLarge}, []error{errdefs.ErrOutcomeUnknown}, false},
		{"shard not ready", context.Background(), dragonboat.ErrShardNotReady, true, []error{errdefs.ErrNoLeader, context.DeadlineExceeded}, []error{errdefs.ErrOutcomeUnknown}, true},
		{"system busy", context.Background(), dragonboat.ErrSystemBusy, true, []error{errdefs.ErrNoLeader, context.DeadlineExceeded}, []error{errdefs.ErrOutcomeUnknown}, true},
		{"shard not initialized", context.Background(), dragonboat.ErrShardNotInitialized, false, []error{errdefs.ErrNoLeader}, nil, true},
		{"timeout too small", context.Background(), dragonboat.ErrTimeoutTooSmall, true, []error{context.DeadlineExceeded}, []error{errdefs.ErrOutcomeUnknown}, false},
		{"deadline not set", context.Background(), dragonboat.ErrDeadlineNotSet, false, []error{context.DeadlineExceeded}, nil, false},
		{"another error", context.Background(), errors.New("boom"), true, nil, []error{errdefs.ErrOutcomeUnknown, errdefs.ErrClosed, errdefs.ErrNoLeader}, false},
	} {
		got := translate(tc.ctx, tc.err, tc.write)
		if got == nil {
			t.Errorf("%s: nil", tc.name)
			continue
		}
		check(t, tc.name, got, tc.is, tc.not)
		a := attempt{err: tc.err, write: tc.write}
		if r := a.retryLater(); r != tc.retry {
			t.Errorf("%s: retryLater = %v, want %v", tc.name, r, tc.retry)
		}
	}
	if translate(context.Background(), nil, true) != nil {
		t.Error("translate(nil) is not nil")
	}
}

func check(t *testing.T, name string, got error, is, not []error) {
	t.Helper()
	for _, want := range is {
		if !errors.Is(got, want) {
			t.Errorf("%s: %v is not %v", name, got, want)
		}
	}
	for _, bad := range not {
		if errors.Is(got, bad) {
			t.Errorf("%s: %v is %v", name, got, bad)
		}
	}
}

// The rules for the end of a request made in attempts: when it is tried
// again, and the error once it is not.
func TestAttemptRules(t *testing.T) {
	closedByFailure := fmt.Errorf("%w: %w", errdefs.ErrClosed, errdefs.ErrCorrupt)
	deadline, canceled := context.DeadlineExceeded, context.Canceled
	unknown, noLeader, closed := errdefs.ErrOutcomeUnknown, errdefs.ErrNoLeader, errdefs.ErrClosed
	for _, tc := range []struct {
		name       string
		a          attempt
		now, later bool    // retryNow, retryLater (whose Backoff ends at once when ctx or the member ended)
		is, not    []error // of final
		msg        string  // in final's message
	}{
		// Retries.
		{name: "a timed-out attempt is made again at once", a: attempt{err: dragonboat.ErrTimeout, write: true, sent: true},
			now: true, is: []error{unknown, deadline}},
		{name: "as is one the leader change ended", a: attempt{err: errLeaderChanged},
			now: true, is: []error{deadline}},
		{name: "a dropped attempt is made again after a backoff", a: attempt{err: dragonboat.ErrSystemBusy, write: true},
			later: true, is: []error{noLeader}},
		{name: "no retry once expired", a: attempt{err: dragonboat.ErrTimeout, write: true, sent: true, expired: true, ctxErr: deadline},
			is: []error{unknown, deadline}},
		{name: "a refused write is not retried", a: attempt{err: dragonboat.ErrRejected, write: true},
			is: []error{unknown, dragonboat.ErrRejected}},

		// Writes: outcome unknown once an attempt may have entered the log.
		{name: "write sent, then dropped until the deadline", a: attempt{err: dragonboat.ErrShardNotReady, write: true, sent: true, expired: true, n: 3},
			is: []error{unknown, deadline}, not: []error{noLeader}, msg: "shard 0"},
		{name: "write sent, then canceled", a: attempt{err: dragonboat.ErrCanceled, write: true, sent: true, expired: true, ctxErr: canceled},
			is: []error{unknown, canceled}, not: []error{deadline}},
		{name: "write never sent, dropped until the deadline", a: attempt{err: dragonboat.ErrShardNotReady, write: true, expired: true, n: 3, ctxErr: deadline},
			is: []error{noLeader, deadline}, not: []error{unknown}},
		{name: "write never sent, first attempt found no time", a: attempt{err: dragonboat.ErrTimeoutTooSmall, write: true, expired: true},
			is: []error{deadline}, not: []error{unknown, noLeader}},
		{name: "write never sent, canceled while dropped", a: attempt{err: dragonboat.ErrSystemBusy, write: true, n: 2, ctxErr: canceled},
			later: true, is: []error{canceled}, not: []error{unknown, noLeader}},
		{name: "write never sent, member closed", a: attempt{err: dragonboat.ErrShardNotReady, write: true, closed: closed},
			later: true, is: []error{closed}, not: []error{unknown}},
		{name: "write sent, member closed", a: attempt{err: dragonboat.ErrShardNotReady, write: true, sent: true, closed: closed},
			later: true, is: []error{closed, unknown}},
		{name: "write cut off by the member's closing", a: attempt{err: dragonboat.ErrShardClosed, write: true, sent: true, closed: closed},
			is: []error{closed, unknown}},
		{name: "member stopped itself", a: attempt{err: dragonboat.ErrCanceled, write: true, sent: true, closed: closedByFailure},
			is: []error{closed, unknown, errdefs.ErrCorrupt}},
		{name: "write too large", a: attempt{err: dragonboat.ErrPayloadTooBig, write: true},
			is: []error{errdefs.ErrRequestTooLarge}, not: []error{unknown}},

		// Reads: never an unknown outcome.
		{name: "read timed out, leader known", a: attempt{err: dragonboat.ErrTimeout, expired: true, leaderKnown: true},
			is: []error{deadline}, not: []error{noLeader, unknown}, msg: "did not confirm"},
		{name: "read timed out, no leader", a: attempt{err: dragonboat.ErrTimeout, expired: true},
			is: []error{noLeader, deadline}, not: []error{unknown}},
		{name: "read dropped until the deadline", a: attempt{err: dragonboat.ErrSystemBusy, expired: true, leaderKnown: true},
			is: []error{noLeader, deadline}},
		{name: "read canceled", a: attempt{err: dragonboat.ErrCanceled, expired: true, ctxErr: canceled},
			is: []error{canceled}, not: []error{deadline, unknown}},
		{name: "read on a closed member", a: attempt{err: dragonboat.ErrTimeout, expired: true, closed: closedByFailure},
			is: []error{closed, errdefs.ErrCorrupt}, not: []error{unknown}},
		{name: "read refused", a: attempt{err: dragonboat.ErrRejected},
			is: []error{dragonboat.ErrRejected}, not: []error{unknown, closed}},
	} {
		if got := tc.a.retryNow(); got != tc.now {
			t.Errorf("%s: retryNow %v, want %v", tc.name, got, tc.now)
		}
		if got := tc.a.retryLater(); got != tc.later {
			t.Errorf("%s: retryLater %v, want %v", tc.name, got, tc.later)
		}
		err := tc.a.final()
		if err == nil {
			t.Errorf("%s: final is nil", tc.name)
			continue
		}
		check(t, tc.name, err, tc.is, tc.not)
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %q does not say %q", tc.name, err, tc.msg)
		}
		if a := tc.a; !a.write && a.closed == nil {
			// A read's answer depends on the leader only where needsLeader says.
			k := a
			k.leaderKnown = !a.leaderKnown
			if differ := k.final().Error() != err.Error(); differ != a.needsLeader() {
				t.Errorf("%s: needsLeader %v, but the leader changes the answer: %v", tc.name, a.needsLeader(), differ)
			}
		}
	}
}
