//go:build pkcs11

package node

import "testing"

func BenchmarkHandshakeToken(b *testing.B) { benchHandshake(b, tokenKey(b), "handshake_ms_token") }
