package vigil_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestCIRunsREADMECommand: the test command README.md gives (the code
// block of its "## Test" section) is the one .ci/run runs, and .ci/run
// keeps the checks that fail the build.
func TestCIRunsREADMECommand(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n## Test\n+```sh\n([^\n]+)\n```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no \"## Test\" section opening with a sh code block")
	}
	cmd := string(m[1])
	var runs bool
	for line := range strings.SplitSeq(string(ci), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "echo") && strings.HasPrefix(line, cmd+" ") {
			runs = true
		}
	}
	if !runs {
		t.Errorf(".ci/run does not run %q, the command README.md gives", cmd)
	}
	for _, step := range []string{"gofmt -l", "go vet ./...", "staticcheck\" ./...", "scripts/vulncheck", `echo "packages: ${passed} passed, ${failed} failed"`} {
		if !strings.Contains(string(ci), step) {
			t.Errorf(".ci/run lost the step %q", step)
		}
	}
}
