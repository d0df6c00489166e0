// Package multicodec stands in for github.com/multiformats/go-multicodec
// inside gardend (go.mod replaces the module with this directory): the one
// code gardend's dependencies compare against, libp2p-key, and its name.
//
// Why: the real package is the whole multicodec table, about 600 codes,
// and its init builds a map of their names at every start: 11–13 ms of a
// nano's start under qemu-aarch64 (GODEBUG=inittrace=1), 7,900 of the
// guest instructions qemu translates before main, 39 kB of arm64 code for
// that init alone. Its importers in gardend's builds, go-libp2p's
// core/peer (peer.FromCid) and, in the full build, boxo's ipns
// (NameFromCid), use only Code, Libp2pKey and a code's name in an error.
// A code this package does not name prints as the real one prints a code
// it does not know.
package multicodec

import "strconv"

// Code is a multicodec code (github.com/multiformats/multicodec, table.csv).
type Code uint64

// Libp2pKey is the CID codec of a libp2p public key (0x72).
const Libp2pKey Code = 0x72

// String is the code's name in the multicodec table.
func (c Code) String() string {
	if c == Libp2pKey {
		return "libp2p-key"
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}
