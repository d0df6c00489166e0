// Package record signs, verifies and keeps peer records: a peer's signed
// description of itself (addresses, role, master, profile) and the
// tombstones that revoke them. A signature covers every field a peer relies
// on, under a domain string per kind of message; a record names its key,
// which must hash to its peer ID. Indexers keep the newest record or
// tombstone per peer in a Book; package node carries them on heartbeats,
// publishes, lookups and the DHT.
package record

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
)

// Record lifetimes. A tombstone must outlive every record it revokes, or a
// deleted record could come back once the tombstone expires (a seed defect).
const (
	MaxTTL       = 48 * time.Hour
	TombstoneTTL = MaxTTL
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
	ErrMalformed = errors.New("record malformed")
	ErrSignature = errors.New("record signature invalid")
	ErrKey       = errors.New("record key does not match its peer ID")
	ErrExpired   = errors.New("record expired")
	ErrTTL       = errors.New("record TTL exceeds the maximum")
	ErrNotOwner  = errors.New("record not signed by its sender")
	ErrReplay    = errors.New("record older than the one held (replay)")
	ErrDeleted   = errors.New("record revoked by a tombstone")
)

// Reason labels record errors for metrics ("other" for any other error).
func Reason(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{{ErrMalformed, "malformed"}, {ErrSignature, "signature"}, {ErrKey, "key"},
		{ErrExpired, "expired"}, {ErrTTL, "ttl"}, {ErrNotOwner, "not_owner"},
		{ErrReplay, "replay"}, {ErrDeleted, "deleted"}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

// Sign signs rec (PubKey is filled from key) and returns the Signed
// record's bytes.
func Sign(c *codec.Codec, key crypto.PrivKey, rec PeerRecord) ([]byte, error) {
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
	return c.Marshal(&Signed{Record: &rec, Signature: sig})
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
	return c.Marshal(&Signed{Tombstone: &ts, Signature: sig})
}

// Verified is a Signed record whose signature and key binding hold.
type Verified struct {
	Peer      peer.ID
	Seq       uint64
	Record    *PeerRecord // nil for a tombstone
	Tombstone *Tombstone
	Expires   time.Time // record expiry, or when the tombstone may be forgotten
	Raw       []byte    // the Signed record's bytes as received
}

// Verify decodes a Signed record and checks: exactly one of record and
// tombstone; the public key hashes to the claimed peer ID; the signature;
// a record not expired and not valid longer than MaxTTL; a tombstone
// not older than TombstoneTTL. Who sent it is checked by the caller.
func Verify(c *codec.Codec, raw []byte, now time.Time) (*Verified, error) {
	var sr Signed
	if err := c.Unmarshal(raw, &sr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if (sr.Record == nil) == (sr.Tombstone == nil) {
		return nil, fmt.Errorf("%w: needs exactly one of record and tombstone", ErrMalformed)
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
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	id, err := peer.IDFromBytes(peerBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: peer ID: %v", ErrMalformed, err)
	}
	pub, err := crypto.UnmarshalPublicKey(pubBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	if !id.MatchesPublicKey(pub) {
		return nil, ErrKey
	}
	ok, err := pub.Verify(append([]byte(domain), body...), sr.Signature)
	if err != nil || !ok {
		return nil, ErrSignature
	}
	v := &Verified{Peer: id, Raw: raw, Record: sr.Record, Tombstone: sr.Tombstone}
	if sr.Record != nil {
		v.Seq = sr.Record.Seq
		v.Expires = time.Unix(int64(sr.Record.Expires), 0)
		if !v.Expires.After(now) {
			return nil, ErrExpired
		}
		if v.Expires.Sub(now) > MaxTTL {
			return nil, ErrTTL
		}
	} else {
		v.Seq = sr.Tombstone.Seq
		deleted := time.Unix(int64(sr.Tombstone.Deleted), 0)
		v.Expires = deleted.Add(TombstoneTTL)
		if !v.Expires.After(now) {
			return nil, ErrExpired
		}
		if deleted.After(now.Add(clockSkew)) {
			return nil, fmt.Errorf("%w: tombstone dated in the future", ErrMalformed)
		}
	}
	return v, nil
}

// Book holds the newest verified record or tombstone per peer. It is
// the indexer's store; safe for concurrent use.
type Book struct {
	c       *codec.Codec
	mu      sync.Mutex
	all     map[peer.ID]*Verified
	expires recordExpiries // every record put, by expiry: Prune pops what expired
}

// recordExpiry is a record held until at.
type recordExpiry struct {
	at time.Time
	v  *Verified
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

// NewBook returns an empty book.
func NewBook(c *codec.Codec) *Book {
	return &Book{c: c, all: map[peer.ID]*Verified{}}
}

// Put verifies raw and stores it if it is newer than what is held. from is
// the authenticated peer that sent it: a peer may only publish its own record
// or tombstone (a DHT key is bound to its owner).
func (b *Book) Put(raw []byte, from peer.ID, now time.Time) (*Verified, error) {
	v, err := Verify(b.c, raw, now)
	if err != nil {
		return nil, err
	}
	if v.Peer != from {
		return nil, ErrNotOwner
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.all[v.Peer]; ok && old.Expires.After(now) {
		switch {
		case bytes.Equal(old.Raw, raw):
			return old, nil // the same record again: fine
		case old.Tombstone != nil && v.Seq <= old.Seq:
			return nil, ErrDeleted
		case v.Seq <= old.Seq:
			return nil, ErrReplay
		}
	}
	b.all[v.Peer] = v
	heap.Push(&b.expires, recordExpiry{at: v.Expires, v: v})
	return v, nil
}

// Get returns the live record of p, or its tombstone.
func (b *Book) Get(p peer.ID, now time.Time) (*Verified, bool) {
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
func (b *Book) Prune(now time.Time) {
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
func (b *Book) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.all)
}

// Held returns every record and tombstone held, expired or not, by peer.
func (b *Book) Held() map[peer.ID]*Verified {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.all)
}

// PeerRecord is a peer's signed description of itself. Every field a peer
// relies on is covered by Signed.Signature (the seed signed only part
// of it).
type PeerRecord struct {
	Peer    []byte   `cbor:"1,keyasint"`           // binary peer ID
	PubKey  []byte   `cbor:"2,keyasint"`           // libp2p-marshalled public key; must hash to Peer
	Name    string   `cbor:"3,keyasint,omitempty"` // site name
	Addrs   [][]byte `cbor:"4,keyasint,omitempty"` // binary multiaddrs
	Seq     uint64   `cbor:"5,keyasint"`           // strictly increasing per peer: replay guard
	Expires uint64   `cbor:"6,keyasint"`           // Unix seconds
	IsNano  bool     `cbor:"7,keyasint,omitempty"`
	Master  []byte   `cbor:"8,keyasint,omitempty"` // binary peer ID of the nano's master
	Profile uint8    `cbor:"9,keyasint,omitempty"` // connectivity profile
}

// Tombstone revokes a peer's record. Only the peer itself can sign one.
type Tombstone struct {
	Peer    []byte `cbor:"1,keyasint"`
	PubKey  []byte `cbor:"2,keyasint"`
	Seq     uint64 `cbor:"3,keyasint"` // greater than the last record's Seq
	Deleted uint64 `cbor:"4,keyasint"` // Unix seconds
}

// Signed carries a PeerRecord or a Tombstone (exactly one) with a
// signature over the deterministic CBOR of that one, prefixed by a domain
// string so a signature can never be replayed as another kind of message.
type Signed struct {
	Record    *PeerRecord `cbor:"1,keyasint,omitempty"`
	Tombstone *Tombstone  `cbor:"2,keyasint,omitempty"`
	Signature []byte      `cbor:"3,keyasint"`
}
