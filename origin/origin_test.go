package origin

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The digest is exactly the documented encoding, built here by hand.
func TestDigestEncoding(t *testing.T) {
	e := Entry{Origin: "OO", Dest: "DDD", ID: 0x0102030405060708, Protocol: "/p", Op: 3, ResourceID: "r", Payload: []byte{9, 9}}
	var b []byte
	field := func(s []byte) {
		b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, "gardend/origin/v1/entry\x00"...)
	field([]byte("OO"))
	field([]byte("DDD"))
	b = append(b, 1, 2, 3, 4, 5, 6, 7, 8)
	field([]byte("/p"))
	b = append(b, 3)
	field([]byte("r"))
	field([]byte{9, 9})
	if got, want := e.Digest(), sha256.Sum256(b); got != want {
		t.Fatalf("digest %x, encoding gives %x", got, want)
	}
}

// Entries that a naive concatenation would confuse — bytes moved from one
// field to its neighbour, an empty field against a missing one — and every
// single-field change all hash differently.
func TestDigestDistinguishesEveryField(t *testing.T) {
	base := Entry{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte("payload")}
	variants := []Entry{
		base,
		{Origin: "origi", Dest: "ndest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte("payload")},
		{Origin: "origin", Dest: "des", ID: 7, Protocol: "tproto", Op: 1, ResourceID: "res", Payload: []byte("payload")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "prot", Op: 1, ResourceID: "ores", Payload: []byte("payload")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "re", Payload: []byte("spayload")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "resp", Payload: []byte("ayload")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "", Payload: []byte("respayload")},
		{Origin: "dest", Dest: "origin", ID: 7, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte("payload")},
		{Origin: "origin", Dest: "dest", ID: 8, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte("payload")},
		{Origin: "origin", Dest: "dest", ID: 7 << 8, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte("payload")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 2, ResourceID: "res", Payload: []byte("payload")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte("payloae")},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "res", Payload: nil},
		{Origin: "origin", Dest: "dest", ID: 7, Protocol: "proto", Op: 1, ResourceID: "res", Payload: []byte{}},
		{},
	}
	seen := map[[32]byte]int{}
	for i, v := range variants {
		d := v.Digest()
		if j, ok := seen[d]; ok {
			// nil and empty payload are the same entry: that is the only
			// allowed collision.
			if !(i == 13 && j == 12) {
				t.Fatalf("variants %d and %d share a digest: %+v / %+v", j, i, variants[j], v)
			}
			continue
		}
		seen[d] = i
	}
	if len(seen) != len(variants)-1 {
		t.Fatalf("%d distinct digests for %d variants", len(seen), len(variants))
	}
}

// mth is RFC 6962's MTH written directly from its definition, to check the
// one-pass builder against.
func mth(ds [][32]byte) [32]byte {
	if len(ds) == 1 {
		return leafHash(ds[0])
	}
	k := splitPoint(len(ds))
	l, r := mth(ds[:k]), mth(ds[k:])
	return nodeHash(l[:], r[:])
}

// auditPath is RFC 6962's PATH from its definition.
func auditPath(m int, ds [][32]byte) [][32]byte {
	if len(ds) == 1 {
		return nil
	}
	k := splitPoint(len(ds))
	if m < k {
		return append(auditPath(m, ds[:k]), mth(ds[k:]))
	}
	return append(auditPath(m-k, ds[k:]), mth(ds[:k]))
}

func TestTreeMatchesRFC6962Definition(t *testing.T) {
	for n := 1; n <= 70; n++ {
		ds := make([][32]byte, n)
		for i := range ds {
			ds[i] = sha256.Sum256([]byte{byte(i), byte(n)})
		}
		leaves := make([][32]byte, n)
		for i, d := range ds {
			leaves[i] = leafHash(d)
		}
		paths := make([][][]byte, n)
		arena := make([][32]byte, 0, n-1)
		root := [32]byte(buildTree(leaves, paths, &arena))
		if len(arena) != n-1 || cap(arena) != n-1 {
			t.Fatalf("n=%d: %d inner nodes in an arena of %d, want %d", n, len(arena), cap(arena), n-1)
		}
		if want := mth(ds); root != want {
			t.Fatalf("n=%d: root %x, MTH %x", n, root, want)
		}
		for m := range n {
			want := auditPath(m, ds)
			if len(paths[m]) != len(want) {
				t.Fatalf("n=%d m=%d: path of %d, PATH has %d", n, m, len(paths[m]), len(want))
			}
			for j := range want {
				if !bytes.Equal(paths[m][j], want[j][:]) {
					t.Fatalf("n=%d m=%d: path[%d] differs", n, m, j)
				}
			}
			got, ok := rootFromPath(leafHash(ds[m]), uint64(m), uint64(n), paths[m])
			if !ok || got != root {
				t.Fatalf("n=%d m=%d: recomputed root %x ok=%v, want %x", n, m, got, ok, root)
			}
		}
	}
}

// One signature covers a whole batch; every entry verifies alone against the
// origin's peer ID, with a path of ceil(log2 n) hashes.
func TestBatchVerifiesEveryLeaf(t *testing.T) {
	ks, id := softKeystore(t)
	dest := newPeer(t)
	for _, n := range []int{1, 2, 3, 5, 64, 1000} {
		es := testEntries(id, dest, n)
		atts, err := SignEntries(ks, ks.PublicKey(), es)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(atts) != n {
			t.Fatalf("n=%d: %d attestations", n, len(atts))
		}
		depth := bits.Len(uint(n - 1))
		for i, a := range atts {
			if a.Index != uint64(i) || a.Size != uint64(n) {
				t.Fatalf("n=%d: attestation %d says leaf %d of %d", n, i, a.Index, a.Size)
			}
			exact := n&(n-1) == 0 // a full tree: every path is as deep as the tree
			if len(a.Path) > depth || (exact && len(a.Path) != depth) || (n > 1 && len(a.Path) == 0) {
				t.Fatalf("n=%d: leaf %d has a path of %d hashes, tree depth %d", n, i, len(a.Path), depth)
			}
			if !bytes.Equal(a.Signature, atts[0].Signature) {
				t.Fatalf("n=%d: leaf %d has its own signature: the batch should be signed once", n, i)
			}
			if err := VerifyEntry(id, dest, es[i], a); err != nil {
				t.Fatalf("n=%d: leaf %d: %v", n, i, err)
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func clonePath(p [][]byte) [][]byte {
	c := make([][]byte, len(p))
	for i := range p {
		c[i] = bytes.Clone(p[i])
	}
	return c
}

// Whatever a relay changes — any byte of the entry, of the path, the index,
// the size, the signature — or a key other than the origin's fails, with the
// error that says why.
func TestTamperingFails(t *testing.T) {
	ks, id := softKeystore(t)
	dest := newPeer(t)
	const n = 13 // odd shape: leaves carried up at two levels
	es := testEntries(id, dest, n)
	atts, err := SignBatch(ks, ks.PublicKey(), digestsOf(es))
	if err != nil {
		t.Fatal(err)
	}
	pub := ks.PublicKey()
	expect := func(name string, want error, got error) {
		t.Helper()
		if !errors.Is(got, want) {
			t.Fatalf("%s: got %v, want %v", name, got, want)
		}
	}
	for _, leaf := range []int{0, 5, 11, 12} {
		e, a := es[leaf], atts[leaf]
		d := e.Digest()

		// Every byte of every field of the entry.
		for i := range []byte(e.Dest) {
			x := e
			x.Dest = peer.ID(flip([]byte(e.Dest), i))
			expect("dest byte", ErrBadSignature, VerifyEntry(id, x.Dest, x, a))
		}
		for i := range e.Payload {
			x := e
			x.Payload = flip(e.Payload, i)
			expect("payload byte", ErrBadSignature, VerifyEntry(id, dest, x, a))
		}
		for i := range []byte(e.Protocol) {
			x := e
			x.Protocol = string(flip([]byte(e.Protocol), i))
			expect("protocol byte", ErrBadSignature, VerifyEntry(id, dest, x, a))
		}
		for i := range []byte(e.ResourceID) {
			x := e
			x.ResourceID = string(flip([]byte(e.ResourceID), i))
			expect("resource byte", ErrBadSignature, VerifyEntry(id, dest, x, a))
		}
		for bit := range 64 {
			x := e
			x.ID ^= 1 << bit
			expect("entry ID bit", ErrBadSignature, VerifyEntry(id, dest, x, a))
		}
		x := e
		x.Op ^= 0x80
		expect("op", ErrBadSignature, VerifyEntry(id, dest, x, a))
		x = e
		x.Payload = append(bytes.Clone(e.Payload), 0)
		expect("payload grown", ErrBadSignature, VerifyEntry(id, dest, x, a))

		// Every byte of the path.
		for j := range a.Path {
			for i := range 32 {
				y := a
				y.Path = clonePath(a.Path)
				y.Path[j][i] ^= 0x01
				expect("path byte", ErrBadSignature, Verify(pub, d, y))
			}
		}
		// Every byte of the signature.
		for i := range a.Signature {
			y := a
			y.Signature = flip(a.Signature, i)
			expect("signature byte", ErrBadSignature, Verify(pub, d, y))
		}
		// Every other index and size: a proof fits one place only.
		for idx := range uint64(n + 3) {
			if idx == a.Index {
				continue
			}
			y := a
			y.Index = idx
			err := Verify(pub, d, y)
			if idx >= n {
				expect("index beyond size", ErrMalformed, err)
			} else if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadProof) {
				t.Fatalf("leaf %d presented as %d: %v", leaf, idx, err)
			}
		}
		for size := uint64(0); size < 70; size++ {
			if size == a.Size {
				continue
			}
			y := a
			y.Size = size
			err := Verify(pub, d, y)
			if size <= a.Index {
				expect("size not above index", ErrMalformed, err)
			} else if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrBadProof) {
				t.Fatalf("leaf %d in a tree of %d: %v", leaf, size, err)
			}
		}
		for _, size := range []uint64{1 << 32, 1<<64 - 1} {
			y := a
			y.Size = size
			expect("huge size", ErrBadProof, Verify(pub, d, y))
		}
		// Path too short, too long, malformed.
		if len(a.Path) > 0 {
			y := a
			y.Path = a.Path[:len(a.Path)-1]
			expect("path cut", ErrBadProof, Verify(pub, d, y))
			y.Path = clonePath(a.Path)
			y.Path[0] = y.Path[0][:31]
			expect("31-byte hash", ErrMalformed, Verify(pub, d, y))
		}
		y := a
		y.Path = append(clonePath(a.Path), make([]byte, 32))
		expect("path grown", ErrBadProof, Verify(pub, d, y))
		y.Path = make([][]byte, MaxPath+1)
		for i := range y.Path {
			y.Path[i] = make([]byte, 32)
		}
		expect("path over the bound", ErrMalformed, Verify(pub, d, y))
		y = a
		y.Signature = a.Signature[:63]
		expect("short signature", ErrMalformed, Verify(pub, d, y))
		y.Signature = nil
		expect("no signature", ErrMalformed, Verify(pub, d, y))
		expect("zero attestation", ErrMalformed, Verify(pub, d, Attestation{}))

		// Another entry's attestation from the same batch.
		other := atts[(leaf+1)%n]
		if err := VerifyEntry(id, dest, e, other); err == nil {
			t.Fatalf("leaf %d verified with leaf %d's attestation", leaf, other.Index)
		}

		// Another peer's key, or a peer that is not the entry's origin.
		stranger := newPeer(t)
		expect("stranger's key", ErrBadSignature, VerifyPeer(stranger, d, a))
		expect("unexpected origin", ErrWrongOrigin, VerifyEntry(stranger, dest, e, a))
		expect("relayed to another peer", ErrWrongDest, VerifyEntry(id, stranger, e, a))
		forged := e
		forged.Origin = stranger
		expect("origin rewritten", ErrBadSignature, VerifyEntry(stranger, dest, forged, a))
		expect("short key", ErrBadKey, Verify(pub[:31], d, a))
		expect("no key", ErrBadKey, Verify(nil, d, a))
	}
}

// A batch signed by another key, however well formed, does not pass as the
// origin's: a station with its own key cannot re-sign a changed entry.
func TestStationCannotResign(t *testing.T) {
	nano, nanoID := softKeystore(t)
	station, _ := softKeystore(t)
	master := newPeer(t)
	es := testEntries(nanoID, master, 4)
	es[2].Payload = []byte("forged health report")
	atts, err := SignBatch(station, station.PublicKey(), digestsOf(es))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyEntry(nanoID, master, es[2], atts[2]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("station-signed entry: %v", err)
	}
	if err := Verify(nano.PublicKey(), es[2].Digest(), atts[2]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("station-signed entry under the nano's key: %v", err)
	}
}

func TestPeerIDsWithoutEd25519Key(t *testing.T) {
	// A secp256k1 identity embeds its key, but it is not Ed25519: an
	// identity multihash (0x00, length) of the key's protobuf (type 2, 33
	// bytes: the curve's generator point). gardend cannot make one, being
	// built without secp256k1 (shim/secp256k1), so it is written by hand.
	g, _ := hex.DecodeString("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
	secpKey := append([]byte{0x08, 0x02, 0x12, byte(len(g))}, g...)
	secpID, err := peer.IDFromBytes(append([]byte{0x00, byte(len(secpKey))}, secpKey...))
	if err != nil {
		t.Fatal(err)
	}
	// A SHA-256 peer ID (as large RSA keys get) embeds no key at all.
	h := sha256.Sum256([]byte("some key"))
	sum := append([]byte{0x12, 0x20}, h[:]...) // multihash: sha2-256, 32 bytes
	if _, err := peer.IDFromBytes(sum); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]peer.ID{"secp256k1": secpID, "sha256": peer.ID(sum), "empty": "", "junk": "\x00\x01junk"} {
		if _, err := PublicKey(id); !errors.Is(err, ErrBadKey) {
			t.Fatalf("%s peer ID: %v", name, err)
		}
		if err := VerifyPeer(id, [32]byte{}, Attestation{}); !errors.Is(err, ErrBadKey) {
			t.Fatalf("%s peer ID: VerifyPeer gave %v", name, err)
		}
	}
}

// SignBatch checks the signer's signature before handing it out: a signer
// that is not the key it claims is caught at the origin.
func TestSignBatchChecksTheSigner(t *testing.T) {
	ks, _ := softKeystore(t)
	other, _ := softKeystore(t)
	ds := [][32]byte{{1}, {2}}
	if _, err := SignBatch(ks, other.PublicKey(), ds); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature under the wrong public key: %v", err)
	}
	if _, err := SignBatch(ks, ks.PublicKey(), nil); err == nil {
		t.Fatal("empty batch signed")
	}
	if _, err := SignBatch(ks, ed25519.PublicKey{1, 2}, ds); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short public key: %v", err)
	}
	closed, _ := softKeystore(t)
	closed.Close()
	if _, err := SignBatch(closed, closed.PublicKey(), ds); err == nil {
		t.Fatal("a closed keystore signed")
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]string{
		ErrMalformed: "malformed", ErrBadProof: "bad_proof", ErrBadSignature: "bad_signature",
		ErrBadKey: "bad_key", ErrWrongOrigin: "wrong_origin", ErrWrongDest: "wrong_dest",
		fmt.Errorf("wrapped: %w", ErrBadProof): "bad_proof", errors.New("x"): "other",
	} {
		if got := Reason(err); got != want {
			t.Fatalf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}
