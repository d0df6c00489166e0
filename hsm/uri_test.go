package hsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	u, err := ParseURI("pkcs11:token=My%20Token;object=id;id=%01%02;slot-id=3?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=12%3B4")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "My Token" || u.Object != "id" || string(u.ID) != "\x01\x02" || *u.SlotID != 3 ||
		u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.PINValue != "12;4" {
		t.Fatalf("parsed %+v", u)
	}
	if s := u.String(); strings.Contains(s, "12") && strings.Contains(s, "pin-value=12") {
		t.Fatalf("String leaks the PIN: %s", s)
	}
	if !strings.Contains(u.String(), "token=My%20Token") {
		t.Fatalf("String = %s", u)
	}
	for _, bad := range []string{
		"pkcs11:token=a;token=b?module-path=/x",   // repeated
		"pkcs11:token=a;flavour=b?module-path=/x", // unknown attribute
		"pkcs11:token=a?module-path=/x&pin-value=1&pin-source=/p",
		"pkcs11:token=a",                 // no module
		"pkcs11:object=a?module-path=/x", // no token
		"pkcs11:token=a;slot-id=x?module-path=/x",
		"pkcs11:token=%zz?module-path=/x",
		"pkcs11:tokenonly?module-path=/x",
		"token=a",
	} {
		if _, err := ParseURI(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPINSource(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(p, []byte("4321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := ParseURI("pkcs11:token=a?module-path=/x&pin-source=file:" + p)
	if err != nil {
		t.Fatal(err)
	}
	if pin, err := u.PIN(); err != nil || pin != "4321" {
		t.Fatalf("pin %q err %v", pin, err)
	}
}
