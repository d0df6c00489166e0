// Package ecdsa stands in for the real package's signatures over
// secp256k1 (see the parent package): nothing signs, parses or verifies.
package ecdsa

import secp256k1 "github.com/decred/dcrd/dcrec/secp256k1/v4"

// Signature is never made.
type Signature struct{ _ [0]func() }

// Sign cannot sign without the curve; go-libp2p recovers the panic into
// an error.
func Sign(key *secp256k1.PrivateKey, hash []byte) *Signature { panic(secp256k1.ErrNotBuiltIn) }

// ParseDERSignature refuses every signature.
func ParseDERSignature(sig []byte) (*Signature, error) { return nil, secp256k1.ErrNotBuiltIn }

// Serialize is unreachable: no Signature is ever made.
func (s *Signature) Serialize() []byte { return nil }

// Verify reports false.
func (s *Signature) Verify(hash []byte, pub *secp256k1.PublicKey) bool { return false }
