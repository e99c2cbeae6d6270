package hooks_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/coordkit/coordkit/internal/proctest"
)

// programs are the packages of the programs coordkit ships.
var programs = []string{proctest.MemberProgram, "github.com/coordkit/coordkit/cmd/coordctl"}

// The hooks that plant bugs exist only in builds with the coordkit_faults
// tag: the programs coordkit ships, built as users build them, do not hold
// them; built with the tag, they do (so the check can fail).
func TestFaultHooksAreAbsentFromThePrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the programs")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not on PATH")
	}
	symbols := func(tags ...string) string {
		t.Helper()
		var all strings.Builder
		for _, bin := range proctest.BuildTags(t, t.TempDir(), tags, programs...) {
			out, err := exec.Command(goTool, "tool", "nm", bin).CombinedOutput()
			if err != nil {
				t.Fatalf("go tool nm: %v\n%s", err, out)
			}
			all.Write(out)
		}
		return all.String()
	}
	hooks := []string{"internal/hooks.SkipReadIndex", "internal/hooks.DropWatchEvent"}
	plain := symbols()
	for _, h := range hooks {
		if strings.Contains(plain, h) {
			t.Errorf("a program built without the coordkit_faults tag holds %s", h)
		}
	}
	tagged := symbols("-tags", "coordkit_faults")
	for _, h := range hooks {
		if !strings.Contains(tagged, h) {
			t.Errorf("built with the coordkit_faults tag, the programs lack %s: the check above proves nothing", h)
		}
	}
}
