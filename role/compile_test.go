package role_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNonRoleDoesNotCompile builds testdata/nonrole, whose lines marked
// "// ERROR" register things that are not roles with role.Of,
// graph.Deployment.Bind and spec.Registry.Roles, and checks that the
// compiler refuses every one of those lines, and only those.
func TestNonRoleDoesNotCompile(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check what does not compile: %v", err)
	}
	src := filepath.Join("testdata", "nonrole", "main.go")
	f, err := os.Open(src)
	require.NoError(t, err)
	want := map[int]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), "// ERROR") {
			want[n] = true
		}
	}
	f.Close()
	require.Len(t, want, 5)

	cmd := exec.Command(goTool, "build", "-o", os.DevNull, "./testdata/nonrole")
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "testdata/nonrole must not compile:\n%s", out)
	got := map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		// testdata/nonrole/main.go:31:12: cannot use ...
		_, rest, ok := strings.Cut(line, "main.go:")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ":")
		var n int
		for _, c := range num {
			n = n*10 + int(c-'0')
		}
		got[n] = true
	}
	require.Equal(t, want, got, "compiler output:\n%s", out)
}
