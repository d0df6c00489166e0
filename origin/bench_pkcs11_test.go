//go:build pkcs11

package origin

import (
	"testing"

	"gardend/internal/testkeys"
)

// BenchmarkCustodySignToken gives custody_signatures_per_s_token: entries
// attested per second with a SoftHSM token, one token signature per batch of
// 64, beside the rate with one token signature per entry.
func BenchmarkCustodySignToken(b *testing.B) {
	benchCustody(b, testkeys.Token(b), "token")
}
