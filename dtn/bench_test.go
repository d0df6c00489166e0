package dtn

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var benchPayload = strings.Repeat("m", 300) // a typical resource mutation

// BenchmarkDTNEnqueue measures durable enqueues per second (each call
// returns only after its fsync) with 1, 8 and 64 concurrent producers.
func BenchmarkDTNEnqueue(b *testing.B) {
	for _, p := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("p%d", p), func(b *testing.B) {
			s := newFixture(b).open(b, func(o *Options) { o.QuotaBytes = 1 << 30 })
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := range p {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						e := entry(fmt.Sprint("dest", w%8), protoCreate, fmt.Sprint("r", i), OpCreate, benchPayload)
						if _, _, err := s.Enqueue(context.Background(), e); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), fmt.Sprintf("dtn_durable_enqueues_per_s_p%d", p))
			b.ReportMetric(float64(b.N)/float64(s.Metrics.Commits.Load()), fmt.Sprintf("dtn_enqueues_per_commit_p%d", p))
		})
	}
}

// BenchmarkDTNDrain measures how fast a backlog for one destination is
// delivered: Peek a window, Ack each entry (the acks of one window are
// group-committed together, as a drain loop does with pipelined sends).
func BenchmarkDTNDrain(b *testing.B) {
	s := newFixture(b).open(b, func(o *Options) { o.QuotaBytes = 1 << 30 })
	ctx := context.Background()
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := range b.N {
			if _, _, err := tx.Enqueue(entry("ground", protoCreate, fmt.Sprint("r", i), OpCreate, benchPayload)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		es, err := s.Peek("ground", 32)
		if err != nil || len(es) == 0 {
			b.Fatalf("peek: %d %v", len(es), err)
		}
		var wg sync.WaitGroup
		for _, e := range es {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Ack(ctx, "ground", e.Ref); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		done += len(es)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dtn_drain_per_s")
}

// seedCache re-creates the seed's DTN persistence (SEED_SPEC §8.6): the whole
// cache as a JSON array, AES-256-GCM sealed, written to a temp file and
// renamed over the target on every change. Like the seed, it does not fsync.
type seedCache struct {
	path    string
	aead    cipher.AEAD
	entries []seedEntry
}

type seedEntry struct {
	DID        string `json:"did"`
	ResourceID string `json:"resource_id,omitempty"`
	Payload    []byte `json:"payload"`
	Proto      string `json:"proto"`
	Retries    int    `json:"retries"`
	AddedAt    int64  `json:"added_at"`
}

func (c *seedCache) enqueue(e seedEntry) error {
	c.entries = append(c.entries, e)
	js, err := json.Marshal(c.entries)
	if err != nil {
		return err
	}
	nonce := make([]byte, 12)
	rand.Read(nonce)
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, c.aead.Seal(nonce, nonce, js, nil), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, c.path)
}

// BenchmarkDTNVersusSeed runs one workload — 1000 enqueues of 300-byte
// mutations from one producer — through this store (durable, fsync per
// commit) and through the seed's approach, side by side, and reports the
// throughput ratio.
func BenchmarkDTNVersusSeed(b *testing.B) {
	const n = 1000
	var ours, seed time.Duration
	for range b.N {
		f := newFixture(b)
		s := f.open(b)
		start := time.Now()
		for i := range n {
			if _, _, err := s.Enqueue(context.Background(), entry("N", protoCreate, fmt.Sprint("r", i), OpCreate, benchPayload)); err != nil {
				b.Fatal(err)
			}
		}
		ours += time.Since(start)
		s.Close()

		block, _ := aes.NewCipher(make([]byte, 32))
		aead, _ := cipher.NewGCM(block)
		c := &seedCache{path: filepath.Join(f.dir, "dnt_cache.bin"), aead: aead}
		start = time.Now()
		for i := range n {
			if err := c.enqueue(seedEntry{DID: "12D3KooWDestination", ResourceID: fmt.Sprint("r", i), Payload: []byte(benchPayload), Proto: protoCreate, AddedAt: int64(i)}); err != nil {
				b.Fatal(err)
			}
		}
		seed += time.Since(start)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n*b.N)/ours.Seconds(), "dtn_seq_enqueues_per_s")
	b.ReportMetric(float64(n*b.N)/seed.Seconds(), "dtn_seed_json_enqueues_per_s")
	b.ReportMetric(seed.Seconds()/ours.Seconds(), "dtn_vs_seed_json_ratio")
}
