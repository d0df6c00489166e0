package main

import (
	"os/exec"
	"strings"
	"testing"
)

// bannedModules must never be linked into gardend: they are large, and QUIC
// and WebRTC refuse a private-network PSK anyway (FIELD_NOTES). They arrive
// through go-libp2p's root package; the host is built by hand to avoid it.
var bannedModules = []string{
	"github.com/quic-go/quic-go",
	"github.com/quic-go/webtransport-go",
	"github.com/pion/",
	"go.uber.org/fx",
}

// TestBannedDependencies lists the packages linked into cmd/gardend, for each
// build flavour, and fails if a banned module appears.
func TestBannedDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go tool is needed to list dependencies: ", err)
	}
	for _, tags := range []string{"", "pkcs11"} {
		cmd := exec.Command(goBin, "list", "-deps", "-tags", tags, "-f", "{{if .Module}}{{.Module.Path}} {{.ImportPath}}{{end}}", "gardend/cmd/gardend")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list (tags %q): %v\n%s", tags, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 3 {
			t.Fatalf("go list returned too little to be believed:\n%s", out)
		}
		for _, l := range lines {
			for _, b := range bannedModules {
				if strings.HasPrefix(l, b) {
					t.Errorf("tags %q: banned dependency linked: %s", tags, l)
				}
			}
		}
	}
}
