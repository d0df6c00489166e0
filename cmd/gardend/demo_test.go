//go:build !nodht

package main

import (
	"strings"
	"testing"
)

func TestDemoDeliversEverythingOnce(t *testing.T) {
	code, out, errOut := runCLI(t, "demo", "--passes", "2", "--pass-seconds", "3", "--gap-seconds", "0.5")
	if code != exitOK {
		t.Fatalf("demo exited %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "demo: queued=16 delivered=16 lost=0 duplicates=0 bytes=") {
		t.Fatalf("summary: %s", last)
	}
}
