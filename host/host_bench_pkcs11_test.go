//go:build pkcs11

package host

import "testing"

func BenchmarkHandshakeToken(b *testing.B) { benchHandshake(b, tokenKey(b), "handshake_ms_token") }
