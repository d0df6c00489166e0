package origin

import "crypto/sha256"

// The tree is RFC 6962's (section 2.1): a leaf hashes 0x00 before its data,
// an inner node 0x01 before its children, so a leaf can never be presented
// as a node or a node as a leaf; a tree of n leaves splits at the largest
// power of two below n, so odd leaves are carried up, never duplicated.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

func leafHash(d [32]byte) [32]byte {
	var b [1 + 32]byte
	b[0] = leafPrefix
	copy(b[1:], d[:])
	return sha256.Sum256(b[:])
}

func nodeHash(left, right []byte) [32]byte {
	var b [1 + 64]byte
	b[0] = nodePrefix
	copy(b[1:], left)
	copy(b[33:], right)
	return sha256.Sum256(b[:])
}

// splitPoint is the largest power of two strictly below n (n ≥ 2).
func splitPoint(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// buildTree returns the root over leaves (already leaf-hashed) and appends to
// paths[i] the audit path of leaf i, deepest sibling first, as RFC 6962's
// PATH does — every path in one pass, O(n log n) hashes in all. Inner node
// hashes go to arena, whose capacity must hold the n-1 of them so that the
// path slices pointing into it stay valid; the returned slice points into
// leaves or arena.
func buildTree(leaves [][32]byte, paths [][][]byte, arena *[][32]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0][:]
	}
	k := splitPoint(len(leaves))
	left := buildTree(leaves[:k], paths[:k], arena)
	right := buildTree(leaves[k:], paths[k:], arena)
	for i := range paths[:k] {
		paths[i] = append(paths[i], right)
	}
	for i := range paths[k:] {
		paths[k+i] = append(paths[k+i], left)
	}
	*arena = append(*arena, nodeHash(left, right))
	return (*arena)[len(*arena)-1][:]
}

// rootFromPath recomputes the root of a tree of size leaves from leaf index's
// hash and its audit path (RFC 9162 section 2.1.3.2). ok is false when the
// path's length or shape does not fit index and size. The caller has checked
// index < size and every path element is 32 bytes.
func rootFromPath(leaf [32]byte, index, size uint64, path [][]byte) (root [32]byte, ok bool) {
	fn, sn := index, size-1 // this node's index and the last index at this level
	r := leaf
	for _, p := range path {
		if sn == 0 {
			return root, false // more path than tree
		}
		if fn&1 == 1 || fn == sn {
			// Sibling on the left; a node with no right sibling (fn == sn
			// and even) climbs levels unchanged until it is a right child.
			r = nodeHash(p, r[:])
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = nodeHash(r[:], p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 {
		return root, false // path too short
	}
	return r, true
}
