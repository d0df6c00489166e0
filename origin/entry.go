package origin

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"

	"github.com/libp2p/go-libp2p/core/peer"
)

// entryDomain starts every entry encoding; the NUL ends it, so no other
// gardend domain string is a prefix of it or it of them.
const entryDomain = "gardend/origin/v1/entry\x00"

// Entry is what the origin vouches for in one DTN entry: who made it, for
// whom, under which of the origin's entry IDs, and its content. Queue
// bookkeeping (position, level, attempts, creation time) is not signed: it
// changes on the way and says nothing a relay could abuse.
type Entry struct {
	Origin     peer.ID // signer: the master for downlink, the nano for uplink
	Dest       peer.ID // the peer that applies it
	ID         uint64  // the origin's entry ID (dedup key at the destination)
	Protocol   string
	Op         uint8 // dtn.Op
	ResourceID string
	Payload    []byte
}

// Digest is SHA-256 over the domain and every field, each variable-length
// field preceded by its length as 8 bytes big-endian and fixed-width fields
// written at their width, in a fixed order. The encoding is therefore
// injective: moving bytes from one field to the next changes a length, and
// a different entry always hashes different bytes.
func (e Entry) Digest() [32]byte {
	h := sha256.New()
	h.Write([]byte(entryDomain))
	writeField(h, []byte(e.Origin))
	writeField(h, []byte(e.Dest))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], e.ID)
	h.Write(n[:])
	writeField(h, []byte(e.Protocol))
	h.Write([]byte{e.Op})
	writeField(h, []byte(e.ResourceID))
	writeField(h, e.Payload)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// Distinct verification failures, for errors.Is. Every error Verify and
// Decode return for bad input wraps exactly one of them.
var (
	// ErrMalformed: the attestation is not well formed (decoding failed,
	// signature not 64 bytes, index not below size, path too long or a
	// path hash not 32 bytes).
	ErrMalformed = errors.New("origin: malformed attestation")
	// ErrBadProof: the audit path does not fit the index and tree size.
	ErrBadProof = errors.New("origin: audit path does not fit the tree")
	// ErrBadSignature: the signature does not verify over the root the
	// entry and path give: the entry, path, index or size was changed, or
	// another key signed.
	ErrBadSignature = errors.New("origin: signature does not verify")
	// ErrBadKey: the origin's peer ID embeds no Ed25519 public key.
	ErrBadKey = errors.New("origin: peer ID carries no Ed25519 public key")
	// ErrWrongOrigin: the entry names an origin other than the one the
	// receiver expects.
	ErrWrongOrigin = errors.New("origin: entry is not from the expected origin")
	// ErrWrongDest: the entry is meant for another peer than the receiver.
	ErrWrongDest = errors.New("origin: entry is meant for another peer")
)

var kinds = [...]error{ErrMalformed, ErrBadProof, ErrBadSignature, ErrBadKey, ErrWrongOrigin, ErrWrongDest}
var reasons = [...]string{"malformed", "bad_proof", "bad_signature", "bad_key", "wrong_origin", "wrong_dest"}

// Reason returns a short label for the kind of err ("malformed",
// "bad_proof", "bad_signature", "bad_key", "wrong_origin", "wrong_dest"), or "other" for
// an error of no kind here. Meant for metric labels.
func Reason(err error) string {
	for i, k := range kinds {
		if errors.Is(err, k) {
			return reasons[i]
		}
	}
	return "other"
}
