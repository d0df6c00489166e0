package origin

import (
	"testing"
	"time"

	"gardend/hsm"
)

// custodyBatch is how many entries one signature covers in the custody
// figures: about what a nano hands a station in one go.
const custodyBatch = 64

// benchCustody signs custodyBatch entries per iteration twice, once as a
// batch (one signature) and once entry by entry (one signature each), and
// reports both rates and their ratio from the same run.
func benchCustody(b *testing.B, ks hsm.Keystore, suffix string) {
	id := keystoreID(b, ks)
	ds := digestsOf(testEntries(id, newPeer(b), custodyBatch))
	pub := ks.PublicKey()
	var batched, single time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if _, err := SignBatch(ks, pub, ds); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for i := range ds {
			if _, err := SignBatch(ks, pub, ds[i:i+1]); err != nil {
				b.Fatal(err)
			}
		}
		batched += t1.Sub(t0)
		single += time.Since(t1)
	}
	entries := float64(b.N * custodyBatch)
	batchRate := entries / batched.Seconds()
	singleRate := entries / single.Seconds()
	b.ReportMetric(batchRate, "custody_signatures_per_s_"+suffix)
	b.ReportMetric(singleRate, "custody_per_entry_signatures_per_s_"+suffix)
	b.ReportMetric(batchRate/singleRate, "custody_batch_speedup_ratio_"+suffix)
}

func BenchmarkCustodySignSoft(b *testing.B) {
	ks, _ := softKeystore(b)
	benchCustody(b, ks, "soft")
}

// BenchmarkVerifyEntry is the receiver's cost for one entry of a batch of
// 64: digest, six path hashes and one Ed25519 verification.
func BenchmarkVerifyEntry(b *testing.B) {
	ks, id := softKeystore(b)
	dest := newPeer(b)
	es := testEntries(id, dest, custodyBatch)
	atts, err := SignBatch(ks, ks.PublicKey(), digestsOf(es))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		j := i % custodyBatch
		if err := VerifyEntry(id, dest, es[j], atts[j]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "origin_verify_entry_us")
}
