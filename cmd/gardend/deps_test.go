package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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

// bannedPackages must not be linked into a build flavour (by build tags).
// The Prometheus client's real implementation and what it drags in
// (procfs, client_model, expfmt with net/http and crypto/tls, expvar,
// regexp) cost the nano 1.05 MB of arm64 binary and about 50 ms of start-up
// under qemu: go.mod replaces the client with an inert stand-in
// (shim/client_golang). A nano never serves the DHT, so its build leaves
// out identify too (0.13 MB), and the demo (0.13 MB, os/exec among it).
// The host has its own TCP transport. The ground build still links
// net/http, crypto/tls and regexp through kad-dht's logging and tracing
// modules.
var bannedPackages = map[string][]string{
	"":       bannedEverywhere,
	"pkcs11": bannedEverywhere,
	"nodht": append([]string{"net/http", "crypto/tls", "regexp", "github.com/libp2p/go-libp2p/p2p/protocol/identify",
		"github.com/libp2p/go-libp2p-kad-dht", "github.com/libp2p/go-netroute", "os/exec"}, bannedEverywhere...),
}

var bannedEverywhere = []string{
	"github.com/prometheus/common/", "github.com/prometheus/procfs", "github.com/prometheus/client_model/", "expvar",
	// go-libp2p's TCP transport and its reuseport, shared-listener and
	// tcpinfo machinery: node/host.go has its own (0.2 MB of the nano).
	"github.com/libp2p/go-libp2p/p2p/transport/tcp", "github.com/libp2p/go-libp2p/p2p/transport/tcpreuse",
	"github.com/libp2p/go-libp2p/p2p/net/reuseport", "github.com/libp2p/go-reuseport",
	"github.com/mikioh/", "github.com/marten-seemann/tcp", // (go-netroute too, but kad-dht imports it)
}

// standIns are the modules go.mod replaces with a directory of gardend's
// own: the inert Prometheus client; the protobuf codec that keeps the
// real runtime out (1.38 MB of the arm64 binary); secp256k1 refused
// (its 0.7 MB table of points, for a key type no gardend peer has); the
// multicodec table and a CPU detection, whose inits every start ran for
// nothing gardend uses.
var standIns = map[string]string{
	"github.com/prometheus/client_golang":       "./shim/client_golang",
	"google.golang.org/protobuf":                "./shim/protobuf",
	"github.com/decred/dcrd/dcrec/secp256k1/v4": "./shim/secp256k1",
	"github.com/multiformats/go-multicodec":     "./shim/multicodec",
	"github.com/klauspost/cpuid/v2":             "./shim/cpuid",
}

// TestBannedDependencies lists the packages linked into cmd/gardend, for each
// build flavour, and fails if a banned module or package appears, or if a
// stand-in is the real module again.
func TestBannedDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go tool is needed to list dependencies: ", err)
	}
	for _, tags := range []string{"", "pkcs11", "nodht"} {
		cmd := exec.Command(goBin, "list", "-deps", "-tags", tags, "-f",
			"{{.ImportPath}} {{with .Module}}{{.Path}} {{with .Replace}}{{.Path}}{{end}}{{end}}", "gardend/cmd/gardend")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list (tags %q): %v\n%s", tags, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 100 {
			t.Fatalf("go list returned too little to be believed:\n%s", out)
		}
		shimmed := map[string]bool{}
		for _, l := range lines {
			f := strings.Fields(l)
			pkg, mod, repl := f[0], "", ""
			if len(f) > 1 {
				mod = f[1]
			}
			if len(f) > 2 {
				repl = f[2]
			}
			for _, b := range bannedModules {
				if strings.HasPrefix(mod, b) {
					t.Errorf("tags %q: banned dependency linked: %s (module %s)", tags, pkg, mod)
				}
			}
			for _, b := range bannedPackages[tags] {
				if pkg == strings.TrimSuffix(b, "/") || strings.HasPrefix(pkg, strings.TrimSuffix(b, "/")+"/") {
					t.Errorf("tags %q: %s is linked again", tags, pkg)
				}
			}
			if want, ok := standIns[mod]; ok {
				if repl != want {
					t.Errorf("tags %q: %s comes from %q, not the stand-in %s", tags, pkg, mod+" "+repl, want)
				}
				shimmed[mod] = true
			}
		}
		for mod := range standIns {
			if !shimmed[mod] {
				// go-libp2p imports both: if nothing links them, the
				// listing above is not what it claims to be.
				t.Errorf("tags %q: %s not found among the dependencies: the listing is wrong", tags, mod)
			}
		}
	}
}

// TestLinkerDropsUnusedMethods fails when something linked into gardend makes
// the linker keep every exported method of every type: a reachable
// reflect.Value.Method or MethodByName with a non-constant name (or, since Go
// 1.26, a reachable reflect Methods iterator). protobuf 1.36.11 did this
// through MethodByName("Methods") and cost 2.9 MB of the arm64 binary. The
// test links the binary with -dumpdep and prints the chain that reached the
// offending symbol.
func TestLinkerDropsUnusedMethods(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go tool is needed to link the binary: ", err)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-dumpdep", "-o", filepath.Join(t.TempDir(), "gardend"), "gardend/cmd/gardend")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var deps bytes.Buffer
	cmd.Stderr = &deps
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("go build -ldflags=-dumpdep: %v\n%s%s", err, out, tail(deps.String(), 2000))
	}
	parent := map[string]string{}
	var culprits []string
	edges := 0
	for _, line := range strings.Split(deps.String(), "\n") {
		from, to, ok := strings.Cut(line, " -> ")
		if !ok {
			continue
		}
		edges++
		from, to = symbolName(from), symbolName(to)
		if _, seen := parent[to]; !seen {
			parent[to] = from
		}
		if strings.HasSuffix(line, "<ReflectMethod>") {
			culprits = append(culprits, to)
		}
	}
	if edges < 1000 {
		t.Fatalf("-dumpdep printed %d edges: too few to be believed\n%s", edges, tail(deps.String(), 2000))
	}
	chainTo := func(c string) []string {
		chain := []string{c}
		for s := c; len(chain) < 40; {
			p, ok := parent[s]
			if !ok || p == "" || p == s {
				break
			}
			chain = append(chain, p)
			s = p
		}
		return chain
	}
	// net/http's server brings its HTTP/2 bundle (1.3 MB on arm64); the
	// metrics listener answers scrapes without it (metrics/server.go).
	if _, ok := parent["net/http.(*Server).Serve"]; ok {
		t.Errorf("net/http's server is linked:\n  %s", strings.Join(chainTo("net/http.(*Server).Serve"), "\n  <- "))
	}
	if _, ok := parent["gardend/metrics.(*Server).serve"]; !ok {
		t.Errorf("the -dumpdep symbol names changed: gardend/metrics.(*Server).serve not found, the net/http check above means nothing")
	}
	for _, c := range culprits {
		chain := chainTo(c)
		t.Errorf("the linker keeps every exported method because %s is reachable:\n  %s\n"+
			"(a method of a type held in an interface is kept when anything calls a method of that name:\n"+
			"look for MethodByName or Method(i) in the dependencies, e.g. with `go build -ldflags=-dumpdep`)",
			c, strings.Join(chain, "\n  <- "))
	}
}

// symbolName strips the attributes -dumpdep appends to a symbol.
func symbolName(s string) string {
	if i := strings.Index(s, " <"); i >= 0 {
		return s[:i]
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
