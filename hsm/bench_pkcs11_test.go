//go:build pkcs11

package hsm

import (
	"context"
	"testing"

	"gardend/hsm/hsmtest"
)

func BenchmarkSignToken(b *testing.B) {
	s := hsmtest.New(b)
	s.InitToken(b, "bench", "1234")
	ref, err := ParseKeyRef(s.URI("bench", "identity", "1234"))
	if err != nil {
		b.Fatal(err)
	}
	ks, _, err := Create(context.Background(), ref)
	if err != nil {
		b.Fatal(err)
	}
	defer ks.Close()
	benchSign(b, ks, "sign_per_s_token")
}
