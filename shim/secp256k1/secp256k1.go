// Package secp256k1 stands in for github.com/decred/dcrd/dcrec/secp256k1/v4
// inside gardend (go.mod replaces the module with this directory): it
// refuses every secp256k1 key.
//
// Why: go-libp2p's core/crypto registers every libp2p key type, and the
// real package carries a 0.7 MB compressed table of precomputed points,
// linked into every gardend binary for a key type no gardend peer has:
// identities are Ed25519 (hsm/ makes nothing else). With this stand-in a
// peer presenting a secp256k1 identity is refused when its key is read
// (ParsePubKey fails), which is where the Noise handshake reads it.
//
// What remains of the API is what go-libp2p calls, failing closed:
// generating a key fails; a private key read from bytes keeps its bytes
// but cannot sign (ecdsa.Sign panics inside go-libp2p's recover, which
// turns it into an error); no signature parses or verifies. gardend never
// reads a libp2p private key of another type than Ed25519.
package secp256k1

import "errors"

// PrivKeyBytesLen is the length of a serialized private key.
const PrivKeyBytesLen = 32

// ErrNotBuiltIn is returned by everything that would need the curve.
var ErrNotBuiltIn = errors.New("secp256k1 keys are not accepted: gardend is built without secp256k1 (identities are Ed25519)")

// PrivateKey is a secp256k1 private key's bytes; it cannot be used.
type PrivateKey struct{ raw []byte }

// PublicKey is never made from bytes; the empty one equals nothing.
type PublicKey struct{ _ [0]func() }

// GeneratePrivateKey fails: gardend makes Ed25519 identities only.
func GeneratePrivateKey() (*PrivateKey, error) { return nil, ErrNotBuiltIn }

// PrivKeyFromBytes keeps a private key's bytes.
func PrivKeyFromBytes(b []byte) *PrivateKey { return &PrivateKey{raw: append([]byte(nil), b...)} }

// Serialize returns the private key's bytes.
func (k *PrivateKey) Serialize() []byte { return append([]byte(nil), k.raw...) }

// PubKey returns an empty public key: the curve is not here to derive it.
func (k *PrivateKey) PubKey() *PublicKey { return &PublicKey{} }

// ParsePubKey refuses every key.
func ParsePubKey(b []byte) (*PublicKey, error) { return nil, ErrNotBuiltIn }

// SerializeCompressed cannot encode a key it does not have; go-libp2p
// recovers the panic into an error.
func (k *PublicKey) SerializeCompressed() []byte { panic(ErrNotBuiltIn) }

// IsEqual reports whether k and o are the same key; without the curve,
// only a key is equal to itself.
func (k *PublicKey) IsEqual(o *PublicKey) bool { return k == o }
