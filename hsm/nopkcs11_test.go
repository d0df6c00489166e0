//go:build !pkcs11

package hsm

import (
	"context"
	"errors"
	"testing"
)

func TestStaticBuildRefusesTokens(t *testing.T) {
	ref, err := ParseKeyRef("pkcs11:token=t?module-path=/x.so")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), ref); !errors.Is(err, ErrNoPKCS11) {
		t.Fatalf("static build opened a token: %v", err)
	}
}
