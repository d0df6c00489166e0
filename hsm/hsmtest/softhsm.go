// Package hsmtest makes real SoftHSM tokens in temporary directories for
// tests: each test gets its own softhsm2.conf (SOFTHSM2_CONF) and token store.
package hsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Modules are the places Debian installs SoftHSM's PKCS#11 library.
var modules = []string{"/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"}

// SoftHSM is one temporary SoftHSM installation.
type SoftHSM struct {
	Dir    string // holds softhsm2.conf and tokens/
	Module string // path of libsofthsm2.so
}

// New prepares a SoftHSM configuration for t and points SOFTHSM2_CONF at
// it. GARDEND_SOFTHSM_MODULE overrides where the PKCS#11 library is. Without SoftHSM the test is skipped — unless GARDEND_REQUIRE_SOFTHSM
// is set (make check sets it), where a missing SoftHSM is a failure.
func New(t testing.TB) *SoftHSM {
	t.Helper()
	module := os.Getenv("GARDEND_SOFTHSM_MODULE") // e.g. an arm64 module under qemu
	for _, m := range modules {
		if module != "" {
			break
		}
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	_, utilErr := exec.LookPath("softhsm2-util")
	if module == "" || utilErr != nil {
		msg := "SoftHSM is not installed (apt-get install softhsm2)"
		if os.Getenv("GARDEND_REQUIRE_SOFTHSM") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = true\n", filepath.Join(dir, "tokens"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	return &SoftHSM{Dir: dir, Module: module}
}

// InitToken creates a token with the given label, user PIN and SO PIN "5678".
func (s *SoftHSM) InitToken(t testing.TB, label, pin string) {
	t.Helper()
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
}

// TokensDir is where SoftHSM keeps token directories (one per token).
func (s *SoftHSM) TokensDir() string { return filepath.Join(s.Dir, "tokens") }

// URI returns a pkcs11: URI for object in token label, with pin-value.
func (s *SoftHSM) URI(label, object, pin string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-value=%s", label, object, s.Module, pin)
}
