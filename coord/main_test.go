package coord_test

import (
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

// leaksEnv, set in the environment, runs the tests without the leak check:
// a test that leaves goroutines behind by design runs in a child process
// with it (inChild).
const leaksEnv = "COORDKIT_TEST_LEAKS_EXPECTED"

func TestMain(m *testing.M) {
	if os.Getenv(leaksEnv) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// inChild reports whether the calling test runs in a child process of its
// own, without the leak check; if not, it runs the test there, fails t
// with the child's output if the child fails, and returns false.
func inChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(leaksEnv) != "" {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), leaksEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a child process: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("in a child process:\n%s", out)
	}
	return false
}
