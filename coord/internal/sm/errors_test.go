package sm

import (
	"errors"
	"testing"

	"github.com/coordkit/coordkit/coord/internal/errdefs"
)

// Every result code but CodeOK is an error, the caller's sentinel where
// there is one.
func TestCodeErr(t *testing.T) {
	for c, want := range map[Code]error{
		CodeLeaseNotFound: errdefs.ErrLeaseNotFound, CodeCompacted: errdefs.ErrCompacted,
		CodeFutureRevision: errdefs.ErrFutureRevision, CodeDuplicateKey: errdefs.ErrDuplicateKey,
		CodeResultLost: errdefs.ErrOutcomeUnknown, CodeStale: errdefs.ErrOutcomeUnknown,
		CodeBadCommand: nil, CodeLeaseExists: nil,
	} {
		err := c.Err()
		if err == nil || want != nil && !errors.Is(err, want) {
			t.Errorf("code %d: %v, want %v", c, err, want)
		}
	}
	if err := CodeOK.Err(); err != nil {
		t.Errorf("CodeOK: %v", err)
	}
}
