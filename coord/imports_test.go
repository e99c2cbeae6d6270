package coord_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The primitives are ordinary clients of coord's public API, like etcd's
// concurrency package over clientv3: Go's internal/ rule alone would let
// them reach inside coord, so this test holds the line.
func TestPrimitivesImportOnlyCoordAndTheStandardLibrary(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	const mod = "github.com/coordkit/coordkit/"
	pkgs := []string{mod + "coord/lock", mod + "coord/election", mod + "coord/registry", mod + "coord/pubsub"}
	out, err := exec.Command("go", append([]string{"list", "-e", "-f", "{{.ImportPath}} {{.Error}}|{{join .Imports \" \"}}"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		head, imports, _ := strings.Cut(line, "|")
		pkg, errText, _ := strings.Cut(head, " ")
		if strings.Contains(errText, "cannot find") || strings.Contains(errText, "no required module provides") || strings.Contains(errText, "no Go files") || strings.Contains(errText, "is not in std") {
			continue // not written yet
		}
		checked++
		for _, imp := range strings.Fields(imports) {
			first, _, _ := strings.Cut(imp, "/")
			if imp != mod+"coord" && strings.Contains(first, ".") {
				t.Errorf("%s imports %s: primitives may import only coord and the standard library", pkg, imp)
			}
		}
	}
	if checked < 2 {
		t.Fatalf("checked %d packages, want at least coord/lock and coord/election:\n%s", checked, out)
	}
}
