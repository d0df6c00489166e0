package node

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
)

// Record lifetimes. A tombstone must outlive every record it revokes, or a
// deleted record could come back once the tombstone expires (a seed defect).
const (
	MaxRecordTTL = 48 * time.Hour
	TombstoneTTL = MaxRecordTTL
	// clockSkew is how far in the future a tombstone's time may be.
	clockSkew = 5 * time.Minute
)

// Signature domains: a signature over one kind of message can never be
// passed off as another.
const (
	recordDomain    = "gardend/v1/peer-record\x00"
	tombstoneDomain = "gardend/v1/tombstone\x00"
)

// Record errors, for errors.Is and metrics.
var (
	ErrRecordMalformed = errors.New("record malformed")
	ErrRecordSignature = errors.New("record signature invalid")
	ErrRecordKey       = errors.New("record key does not match its peer ID")
	ErrRecordExpired   = errors.New("record expired")
	ErrRecordTTL       = errors.New("record TTL exceeds the maximum")
	ErrRecordNotOwner  = errors.New("record not signed by its sender")
	ErrRecordReplay    = errors.New("record older than the one held (replay)")
	ErrRecordDeleted   = errors.New("record revoked by a tombstone")
)

// recordReason labels record errors for metrics.
func recordReason(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{{ErrRecordMalformed, "malformed"}, {ErrRecordSignature, "signature"}, {ErrRecordKey, "key"},
		{ErrRecordExpired, "expired"}, {ErrRecordTTL, "ttl"}, {ErrRecordNotOwner, "not_owner"},
		{ErrRecordReplay, "replay"}, {ErrRecordDeleted, "deleted"}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

// SignRecord signs rec (PubKey is filled from key) and returns the
// SignedRecord's bytes.
func SignRecord(c *codec.Codec, key crypto.PrivKey, rec PeerRecord) ([]byte, error) {
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	rec.PubKey = pub
	body, err := c.Marshal(&rec)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(recordDomain), body...))
	if err != nil {
		return nil, fmt.Errorf("sign record: %w", err)
	}
	return c.Marshal(&SignedRecord{Record: &rec, Signature: sig})
}

// SignTombstone signs a tombstone revoking the key's own record.
func SignTombstone(c *codec.Codec, key crypto.PrivKey, seq uint64, now time.Time) ([]byte, error) {
	pub, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	ts := Tombstone{Peer: []byte(id), PubKey: pub, Seq: seq, Deleted: uint64(now.Unix())}
	body, err := c.Marshal(&ts)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(tombstoneDomain), body...))
	if err != nil {
		return nil, fmt.Errorf("sign tombstone: %w", err)
	}
	return c.Marshal(&SignedRecord{Tombstone: &ts, Signature: sig})
}

// VerifiedRecord is a SignedRecord whose signature and key binding hold.
type VerifiedRecord struct {
	Peer      peer.ID
	Seq       uint64
	Record    *PeerRecord // nil for a tombstone
	Tombstone *Tombstone
	Expires   time.Time // record expiry, or when the tombstone may be forgotten
	Raw       []byte    // the SignedRecord bytes as received
}

// VerifyRecord decodes a SignedRecord and checks: exactly one of record and
// tombstone; the public key hashes to the claimed peer ID; the signature;
// a record not expired and not valid longer than MaxRecordTTL; a tombstone
// not older than TombstoneTTL. Who sent it is checked by the caller.
func VerifyRecord(c *codec.Codec, raw []byte, now time.Time) (*VerifiedRecord, error) {
	var sr SignedRecord
	if err := c.Unmarshal(raw, &sr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordMalformed, err)
	}
	if (sr.Record == nil) == (sr.Tombstone == nil) {
		return nil, fmt.Errorf("%w: needs exactly one of record and tombstone", ErrRecordMalformed)
	}
	var (
		peerBytes, pubBytes []byte
		body                []byte
		domain              string
		err                 error
	)
	if sr.Record != nil {
		peerBytes, pubBytes, domain = sr.Record.Peer, sr.Record.PubKey, recordDomain
		body, err = c.Marshal(sr.Record)
	} else {
		peerBytes, pubBytes, domain = sr.Tombstone.Peer, sr.Tombstone.PubKey, tombstoneDomain
		body, err = c.Marshal(sr.Tombstone)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRecordMalformed, err)
	}
	id, err := peer.IDFromBytes(peerBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: peer ID: %v", ErrRecordMalformed, err)
	}
	pub, err := crypto.UnmarshalPublicKey(pubBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrRecordMalformed, err)
	}
	if !id.MatchesPublicKey(pub) {
		return nil, ErrRecordKey
	}
	ok, err := pub.Verify(append([]byte(domain), body...), sr.Signature)
	if err != nil || !ok {
		return nil, ErrRecordSignature
	}
	v := &VerifiedRecord{Peer: id, Raw: raw, Record: sr.Record, Tombstone: sr.Tombstone}
	if sr.Record != nil {
		v.Seq = sr.Record.Seq
		v.Expires = time.Unix(int64(sr.Record.Expires), 0)
		if !v.Expires.After(now) {
			return nil, ErrRecordExpired
		}
		if v.Expires.Sub(now) > MaxRecordTTL {
			return nil, ErrRecordTTL
		}
	} else {
		v.Seq = sr.Tombstone.Seq
		deleted := time.Unix(int64(sr.Tombstone.Deleted), 0)
		v.Expires = deleted.Add(TombstoneTTL)
		if !v.Expires.After(now) {
			return nil, ErrRecordExpired
		}
		if deleted.After(now.Add(clockSkew)) {
			return nil, fmt.Errorf("%w: tombstone dated in the future", ErrRecordMalformed)
		}
	}
	return v, nil
}

// RecordBook holds the newest verified record or tombstone per peer. It is
// the indexer's store; safe for concurrent use.
type RecordBook struct {
	c       *codec.Codec
	mu      sync.Mutex
	all     map[peer.ID]*VerifiedRecord
	expires recordExpiries // every record put, by expiry: Prune pops what expired
}

// recordExpiry is a record held until at.
type recordExpiry struct {
	at time.Time
	v  *VerifiedRecord
}

type recordExpiries []recordExpiry

func (h recordExpiries) Len() int           { return len(h) }
func (h recordExpiries) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h recordExpiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *recordExpiries) Push(x any)        { *h = append(*h, x.(recordExpiry)) }
func (h *recordExpiries) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = recordExpiry{}
	*h = old[:len(old)-1]
	return x
}

// NewRecordBook returns an empty book.
func NewRecordBook(c *codec.Codec) *RecordBook {
	return &RecordBook{c: c, all: map[peer.ID]*VerifiedRecord{}}
}

// Put verifies raw and stores it if it is newer than what is held. from is
// the authenticated peer that sent it: a peer may only publish its own record
// or tombstone (a DHT key is bound to its owner).
func (b *RecordBook) Put(raw []byte, from peer.ID, now time.Time) (*VerifiedRecord, error) {
	v, err := VerifyRecord(b.c, raw, now)
	if err != nil {
		return nil, err
	}
	if v.Peer != from {
		return nil, ErrRecordNotOwner
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.all[v.Peer]; ok && old.Expires.After(now) {
		switch {
		case bytes.Equal(old.Raw, raw):
			return old, nil // the same record again: fine
		case old.Tombstone != nil && v.Seq <= old.Seq:
			return nil, ErrRecordDeleted
		case v.Seq <= old.Seq:
			return nil, ErrRecordReplay
		}
	}
	b.all[v.Peer] = v
	heap.Push(&b.expires, recordExpiry{at: v.Expires, v: v})
	return v, nil
}

// Get returns the live record of p, or its tombstone.
func (b *RecordBook) Get(p peer.ID, now time.Time) (*VerifiedRecord, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.all[p]
	if !ok || !v.Expires.After(now) {
		return nil, false
	}
	return v, true
}

// Prune forgets expired records and tombstones. It touches only what
// expired (and the replaced records that expired with it), not every
// record held.
func (b *RecordBook) Prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.expires) > 0 && !b.expires[0].at.After(now) {
		e := heap.Pop(&b.expires).(recordExpiry)
		if b.all[e.v.Peer] == e.v {
			delete(b.all, e.v.Peer)
		}
	}
	// Replaced records stay in the heap until their own expiry: a peer
	// renewing often could make it grow; rebuild it when it holds more
	// than twice the records.
	if len(b.expires) > 2*len(b.all)+64 {
		b.expires = b.expires[:0]
		for _, v := range b.all {
			b.expires = append(b.expires, recordExpiry{at: v.Expires, v: v})
		}
		heap.Init(&b.expires)
	}
}

// Len is the number of records and tombstones held.
func (b *RecordBook) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.all)
}
