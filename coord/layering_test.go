package coord_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The module's layering, one rule per kind of package, checked against
// what each package imports (its non-test files):
//
//   - the state machine (coord/internal/sm) is pure: no other package of
//     the module but the error definitions;
//   - the internal parts (coord/internal/...) never import the facade
//     (coord) or anything built on it: facade → parts → sm, one way;
//     except the fair queue under lock and election (coord/internal/queue),
//     which is built, like them, on coord's public API only;
//   - the facade (coord) leaves dragonboat's NodeHost to the parts;
//   - the primitives (lock, election, registry, pubsub, recipe) are ordinary
//     clients of coord's public API, like etcd's concurrency package over
//     clientv3: coord, their own internal helpers and the standard library
//     only (Go's internal/ rule alone would let them reach inside coord);
//   - the HTTP API is built on the public API and the primitives only;
//   - no production package (coord and its packages, the programs under
//     cmd/) imports the test harness (coordtest) or the test helpers
//     (internal/proctest, internal/dnstest).
func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	const mod = "github.com/coordkit/coordkit/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}", mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, "|")
		imports[strings.TrimPrefix(pkg, mod)] = strings.Fields(imps)
	}
	std := func(imp string) bool { first, _, _ := strings.Cut(imp, "/"); return !strings.Contains(first, ".") }
	own := func(imp string) (string, bool) { return strings.CutPrefix(imp, mod) }
	primitives := map[string]bool{"coord/lock": true, "coord/election": true, "coord/registry": true, "coord/pubsub": true, "coord/recipe": true}
	type rule struct {
		name string
		ok   func(imp string) bool
	}
	ruleFor := func(pkg string) (rule, bool) {
		switch {
		case pkg == "coord/internal/sm":
			return rule{"the state machine imports no other coordkit package but errdefs", func(imp string) bool {
				p, ok := own(imp)
				return !ok || p == "coord/internal/errdefs"
			}}, true
		case pkg == "coord/internal/queue":
			return rule{"the fair queue of lock and election is built on coord's public API only", func(imp string) bool {
				p, ok := own(imp)
				return std(imp) || ok && p == "coord"
			}}, true
		case strings.HasPrefix(pkg, "coord/internal/") && pkg != "coord/internal/robustness":
			return rule{"internal parts never import the facade or what is built on it", func(imp string) bool {
				p, ok := own(imp)
				return !ok || strings.HasPrefix(p, "coord/internal/") && p != "coord/internal/robustness"
			}}, true
		case pkg == "coord":
			return rule{"the facade leaves dragonboat's NodeHost to coord/internal/raftnode", func(imp string) bool {
				return imp != "github.com/lni/dragonboat/v4"
			}}, true
		case primitives[pkg] || strings.HasPrefix(pkg, "coord/") && primitives[strings.Join(strings.Split(pkg, "/")[:2], "/")]:
			return rule{"primitives import only coord, their own helpers and the standard library", func(imp string) bool {
				p, ok := own(imp)
				return std(imp) || ok && (p == "coord" || strings.HasPrefix(p, pkg+"/") || strings.HasPrefix(p, "coord/internal/queue"))
			}}, true
		case pkg == "coord/httpapi":
			return rule{"the HTTP API imports only coord, the primitives and the standard library", func(imp string) bool {
				p, ok := own(imp)
				return std(imp) || ok && (p == "coord" || primitives[p])
			}}, true
		}
		return rule{}, false
	}
	checked := 0
	for pkg, imps := range imports {
		for _, imp := range imps {
			if p, ok := own(imp); ok && (p == "coord/coordtest" || p == "internal/proctest" || p == "internal/dnstest") &&
				(pkg == "coord" || strings.HasPrefix(pkg, "cmd/") ||
					strings.HasPrefix(pkg, "coord/") && !strings.HasPrefix(pkg, "coord/internal/robustness") && pkg != "coord/coordtest") {
				t.Errorf("%s imports %s: production packages never import the test harness", pkg, p)
			}
		}
		r, ok := ruleFor(pkg)
		if !ok {
			continue
		}
		checked++
		for _, imp := range imps {
			if !r.ok(imp) {
				t.Errorf("%s imports %s: %s", pkg, imp, r.name)
			}
		}
	}
	for _, pkg := range []string{"coord", "coord/internal/sm", "coord/internal/raftnode", "coord/lock", "coord/election", "coord/httpapi"} {
		if _, ok := imports[pkg]; !ok {
			t.Errorf("go list did not list %s", pkg)
		}
	}
	if checked < 15 {
		t.Fatalf("checked %d packages, want every part, the facade, the primitives and the HTTP API", checked)
	}
}
