// Package origin holds end-to-end signatures by an entry's origin over
// entries that cross relays: a ground station takes custody of entries
// between a nano and its master, stores and forwards them, and must be able
// to do nothing else — not change one, not forge one, not pass one off as
// meant for another peer.
//
// What is signed for one entry is its Digest: SHA-256 over a
// domain-separated, length-prefixed encoding of origin, destination, the
// origin's entry ID, protocol, op, resource ID and payload, so two different
// entries never hash the same bytes. A signature may be slow (SoftHSM signs
// a few thousand times a second, a smart-card class token far fewer), so the
// entries handed over in one go are signed as a batch: the digests are the
// leaves of an RFC 6962 Merkle tree and the origin signs the tree's root and
// size once. Each entry then travels with its own Attestation — the root's
// signature, its leaf index, the tree size and the audit path — and is
// verified alone, wherever it ends up, without the rest of its batch.
//
// This package knows nothing of stores, streams or stations: callers compute
// digests, sign batches through a Signer (hsm.Keystore is one) and verify
// against the origin they expect.
package origin
