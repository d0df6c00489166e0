package origin

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/codec"
)

// rootDomain starts the message the origin signs: domain, tree size (8 bytes
// big-endian), root. It is distinct from every other message a gardend key
// signs (peer records, tombstones, libp2p handshakes), so a batch signature
// cannot be replayed as one of them or they as one.
const rootDomain = "gardend/origin/v1/batch-root\x00"

const (
	// MaxPath bounds the audit path a verifier accepts: 32 hashes cover
	// trees of up to 2^32 leaves. Longer is ErrMalformed.
	MaxPath = 32
	// MaxBatch bounds how many entries SignBatch signs under one root, to
	// bound its memory while signing (≈ 20 KiB for a batch of 64, ≈ 34 MiB
	// at this bound); callers split larger hand-overs.
	MaxBatch = 1 << 16
)

// Signer signs with the origin's Ed25519 identity. hsm.Keystore is one.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
}

// Attestation is one entry's proof that its origin signed it: the signature
// over its batch's root, its place in the batch and the audit path from its
// leaf to the root. It travels with the entry (CBOR, as an array); an entry
// of a batch of n carries ceil(log2 n) path hashes, none for a batch of one.
type Attestation struct {
	_         struct{} `cbor:",toarray"`
	Signature []byte   // Ed25519 over rootDomain ‖ size ‖ root
	Index     uint64   // leaf index, < Size
	Size      uint64   // leaves in the batch, ≥ 1
	Path      [][]byte // audit path, deepest sibling first, 32 bytes each
}

func rootMessage(root [32]byte, size uint64) []byte {
	msg := make([]byte, 0, len(rootDomain)+8+32)
	msg = append(msg, rootDomain...)
	msg = binary.BigEndian.AppendUint64(msg, size)
	return append(msg, root[:]...)
}

// SignBatch signs digests (Entry.Digest of each entry handed over together)
// with one signature and returns one Attestation per digest, in order. pub is
// the signer's public key: the signature is checked before it is handed out,
// so a faulty signer is caught here rather than by every receiver. The
// attestations share their signature and path hashes: treat them as
// read-only (encoding them copies).
func SignBatch(s Signer, pub ed25519.PublicKey, digests [][32]byte) ([]Attestation, error) {
	n := len(digests)
	if n == 0 {
		return nil, errors.New("origin: empty batch")
	}
	if n > MaxBatch {
		return nil, fmt.Errorf("origin: batch of %d entries, at most %d under one signature", n, MaxBatch)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("origin: public key of %d bytes: %w", len(pub), ErrBadKey)
	}
	leaves := make([][32]byte, n)
	for i, d := range digests {
		leaves[i] = leafHash(d)
	}
	depth := bits.Len(uint(n - 1))  // ceil(log2 n): the longest path
	slab := make([][]byte, n*depth) // every path's hash references, one allocation
	paths := make([][][]byte, n)
	for i := range paths {
		paths[i] = slab[i*depth : i*depth : (i+1)*depth]
	}
	arena := make([][32]byte, 0, n-1)
	root := [32]byte(buildTree(leaves, paths, &arena))
	msg := rootMessage(root, uint64(n))
	sig, err := s.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("origin: sign batch root: %w", err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return nil, fmt.Errorf("origin: the signer's batch signature does not verify under its public key: %w", ErrBadSignature)
	}
	out := make([]Attestation, n)
	for i := range out {
		out[i] = Attestation{Signature: sig, Index: uint64(i), Size: uint64(n), Path: paths[i]}
	}
	return out, nil
}

// SignEntries is SignBatch over the entries' digests.
func SignEntries(s Signer, pub ed25519.PublicKey, entries []Entry) ([]Attestation, error) {
	ds := make([][32]byte, len(entries))
	for i := range entries {
		ds[i] = entries[i].Digest()
	}
	return SignBatch(s, pub, ds)
}

// check is the shape a verifier requires before any hashing.
func (a *Attestation) check() error {
	switch {
	case len(a.Signature) != ed25519.SignatureSize:
		return fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(a.Signature))
	case a.Size == 0:
		return fmt.Errorf("%w: empty tree", ErrMalformed)
	case a.Index >= a.Size:
		return fmt.Errorf("%w: leaf %d of a tree of %d", ErrMalformed, a.Index, a.Size)
	case len(a.Path) > MaxPath:
		return fmt.Errorf("%w: path of %d hashes, at most %d", ErrMalformed, len(a.Path), MaxPath)
	}
	for i, p := range a.Path {
		if len(p) != 32 {
			return fmt.Errorf("%w: path hash %d is %d bytes", ErrMalformed, i, len(p))
		}
	}
	return nil
}

// Verify checks that the holder of pub signed the entry with this digest.
// Failures wrap ErrMalformed, ErrBadKey, ErrBadProof or ErrBadSignature; no
// input makes it panic.
func Verify(pub ed25519.PublicKey, digest [32]byte, att Attestation) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key of %d bytes", ErrBadKey, len(pub))
	}
	if err := att.check(); err != nil {
		return err
	}
	root, ok := rootFromPath(leafHash(digest), att.Index, att.Size, att.Path)
	if !ok {
		return fmt.Errorf("%w: %d hashes for leaf %d of %d", ErrBadProof, len(att.Path), att.Index, att.Size)
	}
	if !ed25519.Verify(pub, rootMessage(root, att.Size), att.Signature) {
		return ErrBadSignature
	}
	return nil
}

// PublicKey extracts the Ed25519 key a peer ID embeds (gardend's identities
// are Ed25519, whose peer IDs are identity multihashes of the key).
func PublicKey(id peer.ID) (ed25519.PublicKey, error) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("%w: key type %v", ErrBadKey, pk.Type())
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: unreadable key", ErrBadKey)
	}
	return ed25519.PublicKey(raw), nil
}

// VerifyPeer is Verify against the key the origin's peer ID embeds.
func VerifyPeer(origin peer.ID, digest [32]byte, att Attestation) error {
	pub, err := PublicKey(origin)
	if err != nil {
		return err
	}
	return Verify(pub, digest, att)
}

// VerifyEntry is what a receiver calls on an entry that crossed a relay: e
// must come from the origin it expects (its master, or the nano it serves),
// be meant for itself, and carry that origin's signature. ErrWrongOrigin or
// ErrWrongDest if e names another peer (a station relaying an entry to a peer
// it was not meant for), else as VerifyPeer.
func VerifyEntry(from, to peer.ID, e Entry, att Attestation) error {
	if e.Origin != from {
		return fmt.Errorf("%w: entry names %s, expected %s", ErrWrongOrigin, e.Origin, from)
	}
	if e.Dest != to {
		return fmt.Errorf("%w: entry is for %s, not %s", ErrWrongDest, e.Dest, to)
	}
	return VerifyPeer(from, e.Digest(), att)
}

// Encode returns the attestation's CBOR bytes (deterministic).
func Encode(c *codec.Codec, att Attestation) ([]byte, error) {
	return c.Marshal(&att)
}

// Decode parses an attestation received from the network, through the
// codec's bounded decoder, and checks its shape (as Verify does). Every
// failure wraps ErrMalformed (and the codec's own kind).
func Decode(c *codec.Codec, raw []byte) (Attestation, error) {
	var att Attestation
	if err := c.Unmarshal(raw, &att); err != nil {
		return Attestation{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := att.check(); err != nil {
		return Attestation{}, err
	}
	return att, nil
}
