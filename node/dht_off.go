//go:build nodht

package node

import (
	"context"
	"errors"

	"gardend/record"

	"github.com/libp2p/go-libp2p/core/peer"
)

// This build leaves the Kademlia DHT out (a nano-only binary never serves
// it); indexers keep records in their record book only.

type recordDHT interface{ Close() error }

const DHTBuilt = false

func startDHT(_ context.Context, n *Node) (recordDHT, error) {
	if n.o.DHT {
		return nil, errors.New("this gardend build has no DHT (built with -tags nodht)")
	}
	return nil, nil
}

func (x *indexer) publishDHT(*record.Verified) {}

func (x *indexer) lookupDHT(peer.ID) ([]byte, bool) { return nil, false }
