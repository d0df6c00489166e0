//go:build pkcs11

package host

import (
	"testing"

	"gardend/internal/testkeys"
)

func BenchmarkHandshakeToken(b *testing.B) {
	benchHandshake(b, testkeys.Libp2p(b, testkeys.Token(b)), "handshake_ms_token")
}
