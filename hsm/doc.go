// Package hsm keeps the node's keys: the Ed25519 identity that signs records
// and handshakes, and the storage key that wraps the data key of the state
// database. Both sit behind one interface, Keystore, with two backends:
//
//   - the software keystore (every build): an Ed25519 seed in a 0600 PEM file,
//     its public key after it (read at start, checked at the first signature);
//     the storage key is derived from the seed with HKDF-SHA256 under a
//     domain-separated label, so it never exists on disk;
//   - the PKCS#11 token (build tag pkcs11, cgo, dynamically linked): keys named
//     by an RFC 7512 URI, generated inside the token as sensitive,
//     non-extractable objects; the token signs (CKM_EDDSA) and wraps the data
//     key with a non-extractable AES-256 key (CKM_AES_GCM, 12-byte IV).
//
// Why miekg/pkcs11 alone and not crypto11: crypto11 has no Ed25519, so EdDSA
// would have to go through raw PKCS#11 beside it anyway, and the two sharing
// one module is fragile (FIELD_NOTES): crypto11 must initialise first, its
// Close finalises the module under the other user and panics when called
// twice, and its AEAD panics on a token error. One thin wrapper owning the
// module, the session and the re-login after a token is re-plugged is smaller
// and has no panics to contain. Exactly one handle calls C_Finalize: the one
// whose C_Initialize succeeded.
//
// Every signature is verified in Go before it is returned: a token that
// returns a wrong signature (a fault, a bit flip in orbit) is caught here,
// not by the peer.
package hsm
