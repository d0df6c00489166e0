package hsm

import (
	"context"
	"path/filepath"
	"testing"
)

// benchSign measures signatures per second with parallel callers.
func benchSign(b *testing.B, ks Keystore, metric string) {
	msg := make([]byte, 300) // about a signed peer record
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ks.Sign(msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), metric)
}

func BenchmarkSignSoft(b *testing.B) {
	ks, _, err := Create(context.Background(), KeyRef{File: filepath.Join(b.TempDir(), "id.key")})
	if err != nil {
		b.Fatal(err)
	}
	defer ks.Close()
	benchSign(b, ks, "sign_per_s_soft")
}
