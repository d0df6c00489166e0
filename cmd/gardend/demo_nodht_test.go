//go:build nodht

package main

import (
	"strings"
	"testing"
)

// TestDemoIsNotInTheNanoBuild: the nano build neither lists nor runs the
// demo; it is an unknown command there.
func TestDemoIsNotInTheNanoBuild(t *testing.T) {
	code, out, errOut := runCLI(t, "demo", "--passes", "1")
	if code != exitUsage || out != "" || !strings.Contains(errOut, `unknown command "demo"`) {
		t.Fatalf("demo in the nano build: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, out, _ := runCLI(t, "help"); strings.Contains(out, "demo") {
		t.Fatalf("help lists the demo:\n%s", out)
	}
}
