package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

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
