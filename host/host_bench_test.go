package host

import (
	"context"
	"testing"
	"time"

	"gardend/internal/testkeys"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// benchHandshake measures one full connection set-up on loopback — TCP,
// PSK, Noise XX (signed by key), yamux — by closing and re-dialling.
func benchHandshake(b *testing.B, key crypto.PrivKey, metric string) {
	psk := testkeys.PSK(b)
	a := newTestHost(b, key, psk)
	peer := newTestHost(b, testkeys.SoftKey(b), psk)
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		a.Network().ClosePeer(peer.ID())
		a.ClearBackoff(peer.ID())
		start := time.Now()
		if err := a.Dial(ctx, peer.ID(), peer.Addrs()...); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), metric)
}

func BenchmarkHandshakeSoft(b *testing.B) {
	benchHandshake(b, testkeys.SoftKey(b), "handshake_ms_soft")
}
