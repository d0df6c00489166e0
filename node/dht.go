//go:build !nodht

package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gardend/record"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// dhtNamespace is the record namespace: keys are /gardend/<binary peer ID>.
const dhtNamespace = "gardend"

type recordDHT interface{ Close() error }

// DHTBuilt says whether this build has the DHT (and identify, its only
// user); a nodht build has neither.
const DHTBuilt = true

// startDHT runs a Kademlia server for an indexer: custom protocol prefix
// (/gardend/kad/1.0.0), our record validator, seeds as bootstrap peers.
// ModeServer is set explicitly: ModeAuto never turns into a server on a
// hand-built host (FIELD_NOTES).
func startDHT(ctx context.Context, n *Node) (recordDHT, error) {
	if !n.o.DHT {
		return nil, nil
	}
	if err := n.h.StartIdentify(); err != nil {
		return nil, err
	}
	d, err := dht.New(ctx, n.h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(protocol.ID(DHTPrefix)),
		dht.NamespacedValidator(dhtNamespace, dhtValidator{n: n}),
		dht.BootstrapPeers(n.o.DHTBootstrap...),
		dht.DisableProviders(),
	)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func dhtKey(p peer.ID) string { return "/" + dhtNamespace + "/" + string(p) }

// publishDHT stores an accepted record in the DHT, in the background: a
// failed put is counted, the record book still has it.
func (x *indexer) publishDHT(v *record.Verified) {
	d, ok := x.n.dht.(*dht.IpfsDHT)
	if !ok || d == nil {
		return
	}
	x.n.loop(func() {
		ctx, cancel := context.WithTimeout(x.n.ctx, 10*time.Second)
		defer cancel()
		if err := d.PutValue(ctx, dhtKey(v.Peer), v.Raw); err != nil {
			x.n.Metrics.Inc("dht_put_failures")
		} else {
			x.n.Metrics.Inc("dht_puts")
		}
	})
}

func (x *indexer) lookupDHT(p peer.ID) ([]byte, bool) {
	d, ok := x.n.dht.(*dht.IpfsDHT)
	if !ok || d == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(x.n.ctx, 5*time.Second)
	defer cancel()
	v, err := d.GetValue(ctx, dhtKey(p))
	return v, err == nil
}

// dhtValidator binds each key to its owner: the value under /gardend/<id>
// must be a record or tombstone signed by <id>'s key.
type dhtValidator struct{ n *Node }

func (v dhtValidator) Validate(key string, value []byte) error {
	_, err := v.verify(key, value)
	if err != nil {
		v.n.Metrics.Inc("dht_rejected_" + record.Reason(err))
	}
	return err
}

func (v dhtValidator) verify(key string, value []byte) (*record.Verified, error) {
	id, ok := strings.CutPrefix(key, "/"+dhtNamespace+"/")
	if !ok {
		return nil, fmt.Errorf("%w: key %q is not under /%s/", record.ErrMalformed, key, dhtNamespace)
	}
	rec, err := record.Verify(v.n.c, value, v.n.o.Now())
	if err != nil {
		return nil, err
	}
	if string(rec.Peer) != id {
		return nil, record.ErrNotOwner
	}
	return rec, nil
}

// Select prefers the highest sequence number; a tombstone wins a tie.
func (v dhtValidator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq, bestTomb := -1, uint64(0), false
	for i, val := range values {
		rec, err := v.verify(key, val)
		if err != nil {
			continue
		}
		tomb := rec.Tombstone != nil
		if best < 0 || rec.Seq > bestSeq || rec.Seq == bestSeq && tomb && !bestTomb {
			best, bestSeq, bestTomb = i, rec.Seq, tomb
		}
	}
	if best < 0 {
		return 0, errors.New("no valid record")
	}
	return best, nil
}
