package node

import (
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
)

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func countBucket(t *testing.T, x *tnode, bucket string) int {
	k := 0
	x.store.View(func(tx *dtn.Tx) error {
		return tx.ForEach(bucket, func(_, _ []byte) error { k++; return nil })
	})
	return k
}

// TestPruneAppliedIsIncremental: records leave in time order, oldest
// first, at most pruneBatch × pruneRound per round; records written before
// the time index are indexed once and pruned like the others; a delivery
// still remembered is refused as a duplicate.
func TestPruneAppliedIsIncremental(t *testing.T) {
	ctx := context.Background()
	clock := &stepClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tn := newTestNet(t)
	x := tn.peerOf("master", RoleMaster, func(o *dtn.Options) { o.Now = clock.Now })
	x.opts.Now = clock.Now
	n, err := New(x.opts)
	if err != nil {
		t.Fatal(err)
	}
	x.Node = n
	from := x.ID() // any peer ID will do
	noop := func(*dtn.Tx) error { return nil }
	// Two legacy records (no time index), written on day 0.
	if err := x.store.Update(ctx, func(tx *dtn.Tx) error {
		for id := uint64(1); id <= 2; id++ {
			key := tx.Hash("applied", []byte(from), binary.BigEndian.AppendUint64(nil, id))
			if err := tx.Put(bucketApplied, key, binary.BigEndian.AppendUint64(nil, uint64(tx.Now().Unix()))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Day 0: more than one round can prune; day 20: 10 more.
	old := pruneBatch*pruneRound + 100
	for i := 0; i < old; i += 1000 {
		if err := x.store.Update(ctx, func(tx *dtn.Tx) error {
			for id := i; id < min(i+1000, old); id++ {
				if _, err := applyOnceTx(tx, from, uint64(100+id), noop); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(20 * 24 * time.Hour)
	for id := range 10 {
		if _, err := n.applyOnce(ctx, from, uint64(10_000_000+id), noop); err != nil {
			t.Fatal(err)
		}
	}
	total := 2 + old + 10
	if got := countBucket(t, x, bucketApplied); got != total {
		t.Fatalf("%d records, want %d", got, total)
	}
	// Day 35: day 0 is past the 30 days kept, day 20 is not.
	clock.Add(15 * 24 * time.Hour)
	deleted, err := n.pruneAppliedRound(ctx, appliedKeep)
	if err != nil {
		t.Fatal(err)
	}
	if deleted != pruneBatch*pruneRound {
		t.Fatalf("first round deleted %d, want the bound %d", deleted, pruneBatch*pruneRound)
	}
	deleted, err = n.pruneAppliedRound(ctx, appliedKeep)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 + old - pruneBatch*pruneRound; deleted != want {
		t.Fatalf("second round deleted %d, want %d", deleted, want)
	}
	if got := countBucket(t, x, bucketApplied); got != 10 {
		t.Fatalf("%d records left, want the 10 of day 20", got)
	}
	if got := countBucket(t, x, bucketAppliedAt); got != 10+1 { // + the legacy marker
		t.Fatalf("%d index entries left, want 11", got)
	}
	dup, err := n.applyOnce(ctx, from, 10_000_003, func(*dtn.Tx) error { return fmt.Errorf("applied twice") })
	if err != nil || !dup {
		t.Fatalf("a remembered delivery was applied again: dup %v, %v", dup, err)
	}
	if deleted, _ := n.pruneAppliedRound(ctx, appliedKeep); deleted != 0 {
		t.Fatalf("a third round deleted %d", deleted)
	}
}

// TestPendingClaimsExpire: the indexer's GC forgets a PendingContact claim
// when it expires, keeps one renewed since, and holds no more expiries
// than claims made within their lifetime.
func TestPendingClaimsExpire(t *testing.T) {
	x := &indexer{pending: map[peer.ID]map[peer.ID]time.Time{}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	claim := func(target, caller peer.ID, exp time.Time) {
		if x.pending[target] == nil {
			x.pending[target] = map[peer.ID]time.Time{}
		}
		x.pending[target][caller] = exp
		heap.Push(&x.claimExpiries, claimExpiry{at: exp, target: target, caller: caller})
	}
	claim("nano-a", "master", t0.Add(time.Minute))
	claim("nano-b", "master", t0.Add(time.Minute))
	claim("nano-b", "master", t0.Add(3*time.Minute)) // renewed
	claim("nano-c", "other", t0.Add(2*time.Minute))
	x.pruneClaims(t0.Add(90 * time.Second))
	if _, ok := x.pending["nano-a"]; ok {
		t.Fatal("an expired claim was kept")
	}
	if x.pending["nano-b"]["master"] != t0.Add(3*time.Minute) || x.pending["nano-c"] == nil {
		t.Fatalf("a live claim was dropped: %v", x.pending)
	}
	if len(x.claimExpiries) != 2 {
		t.Fatalf("%d expiries held for 2 live claims", len(x.claimExpiries))
	}
	x.pruneClaims(t0.Add(time.Hour))
	if len(x.pending) != 0 || len(x.claimExpiries) != 0 {
		t.Fatalf("claims left after every expiry: %v, %d", x.pending, len(x.claimExpiries))
	}
}
