package hsm

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestSoftKeystoreLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "identity.key")
	ref := KeyRef{File: path}
	if _, err := Open(context.Background(), ref); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open before keygen: %v, want ErrNoKey", err)
	}
	ks, created, err := Create(context.Background(), ref)
	if err != nil || !created {
		t.Fatalf("create: created=%v err=%v", created, err)
	}
	defer ks.Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	ks2, created, err := Create(context.Background(), ref)
	if err != nil || created {
		t.Fatalf("second create must reuse the key: created=%v err=%v", created, err)
	}
	defer ks2.Close()
	if !bytes.Equal(ks.PublicKey(), ks2.PublicKey()) {
		t.Fatal("second create changed the identity")
	}
	msg := []byte("record bytes")
	sig, err := ks.Sign(msg)
	if err != nil || !ed25519.Verify(ks.PublicKey(), msg, sig) {
		t.Fatalf("sign: %v", err)
	}
}

func TestSoftStorageKey(t *testing.T) {
	dir := t.TempDir()
	a, _, err := Create(context.Background(), KeyRef{File: filepath.Join(dir, "a.key")})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Create(context.Background(), KeyRef{File: filepath.Join(dir, "b.key")})
	if err != nil {
		t.Fatal(err)
	}
	dk := bytes.Repeat([]byte{7}, 32)
	w, err := a.WrapDataKey(dk)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, dk) {
		t.Fatal("wrapped key contains the data key in clear")
	}
	got, err := a.UnwrapDataKey(w)
	if err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("unwrap: %v", err)
	}
	// The storage key is a pure function of the seed: a reopened keystore
	// unwraps what the first one wrapped.
	a2, err := Open(context.Background(), KeyRef{File: filepath.Join(dir, "a.key")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a2.UnwrapDataKey(w); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("unwrap after reopen: %v", err)
	}
	if _, err := b.UnwrapDataKey(w); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("other key unwrapped: %v", err)
	}
	w[len(w)-1] ^= 1
	if _, err := a.UnwrapDataKey(w); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("tampered wrap: %v", err)
	}
	if _, err := a.UnwrapDataKey(nil); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("empty wrap: %v", err)
	}
}

func TestSoftKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id.key")
	ks, _, err := Create(context.Background(), KeyRef{File: path})
	if err != nil {
		t.Fatal(err)
	}
	ks.Close()
	if _, err := ks.Sign([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("sign after close: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), KeyRef{File: path}); !errors.Is(err, ErrKeyFileMode) {
		t.Fatalf("world-readable key: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), KeyRef{File: garbage}); err == nil {
		t.Fatal("garbage accepted as a key")
	}
}

func TestSoftConcurrentSign(t *testing.T) {
	ks, _, err := Create(context.Background(), KeyRef{File: filepath.Join(t.TempDir(), "id.key")})
	if err != nil {
		t.Fatal(err)
	}
	concurrentSign(t, ks)
}

// concurrentSign signs from 8 goroutines at once and checks every signature.
func concurrentSign(t *testing.T, ks Keystore) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				msg := []byte{byte(g), byte(i)}
				sig, err := ks.Sign(msg)
				if err != nil {
					errs <- err
					return
				}
				if !ed25519.Verify(ks.PublicKey(), msg, sig) {
					errs <- errors.New("bad signature under concurrency")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestSoftKeyFileForms reads key files in the PKCS#8 forms a key can come
// in. The plain Ed25519 form (keygen's, OpenSSL's, RFC 8410's example) is
// read without encoding/asn1 and must give what x509 gives; every other
// form goes through x509 as before.
func TestSoftKeyFileForms(t *testing.T) {
	dir := t.TempDir()
	open := func(name string, der []byte) (ed25519.PrivateKey, error) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		priv, fromFile, err := readKeyFile(path)
		if fromFile {
			t.Fatalf("%s: public key taken from a file that has none", name)
		}
		return priv, err
	}
	for i := range 50 {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parseEd25519PKCS8(der); !ok {
			t.Fatalf("x509's own Ed25519 PKCS#8 (%x) is not read directly", der)
		}
		got, err := open(fmt.Sprintf("k%d.key", i), der)
		if err != nil || !got.Equal(priv) {
			t.Fatalf("key %d read back as %x (%v), want %x", i, got, err, priv)
		}
	}

	// RFC 8410 section 10.3: the example private key and its public key.
	block, _ := pem.Decode([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n"))
	rfc, err := open("rfc8410.key", block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if pub := hex.EncodeToString(rfc.Public().(ed25519.PublicKey)); pub != "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1" {
		t.Fatalf("RFC 8410's example key has public key %s", pub)
	}

	// Other forms are x509's to judge: the same answer as x509 gives.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	// PKCS#8 v2 (RFC 5958) with the public key: version 1 and a [1] field.
	v2 := append([]byte{0x30, 0x51, 0x02, 0x01, 0x01}, der[5:]...)
	v2 = append(append(v2, 0x81, 0x21, 0x00), priv.Public().(ed25519.PublicKey)...)
	others := map[string][]byte{
		"ecdsa":         ecDER,
		"v2":            v2,
		"trailing byte": append(slices.Clone(der), 0),
		"short seed":    append([]byte{0x30, 0x2d}, append(slices.Clone(der[2:14]), append([]byte{0x21, 0x04, 0x1f}, der[17:]...)...)...),
		"other OID":     append(append(slices.Clone(der[:11]), 0x71), der[12:]...),
	}
	for name, der := range others {
		if _, ok := parseEd25519PKCS8(der); ok {
			t.Errorf("%s: read directly, want it left to x509", name)
		}
		got, err := open(strings.ReplaceAll(name, " ", "-")+".key", der)
		want, werr := x509.ParsePKCS8PrivateKey(der)
		if werr == nil {
			if wk, ok := want.(ed25519.PrivateKey); ok {
				if err != nil || !got.Equal(wk) {
					t.Errorf("%s: read as %x (%v), x509 reads %x", name, got, err, wk)
				}
				continue
			}
		}
		if err == nil {
			t.Errorf("%s: accepted (%x), but x509 gives %T, %v", name, got, want, werr)
		}
	}
}

// TestSoftKeyFilePublicBlock: keygen writes the public key after the
// private key, the start takes it from there without deriving it, and the
// first signature catches a public key that is not the seed's.
func TestSoftKeyFilePublicBlock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id.key")
	ks, _, err := Create(context.Background(), KeyRef{File: path})
	if err != nil {
		t.Fatal(err)
	}
	want := ks.PublicKey()
	ks.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	privBlock, rest := pem.Decode(data)
	pubBlock, _ := pem.Decode(rest)
	if privBlock == nil || privBlock.Type != "PRIVATE KEY" || pubBlock == nil || pubBlock.Type != "PUBLIC KEY" {
		t.Fatalf("keygen wrote:\n%s\nwant a PRIVATE KEY block, then a PUBLIC KEY block", data)
	}
	k, err := x509.ParsePKIXPublicKey(pubBlock.Bytes)
	if err != nil || !want.Equal(k) {
		t.Fatalf("the PUBLIC KEY block reads as %v (%v), want %x", k, err, want)
	}
	if _, fromFile, err := readKeyFile(path); err != nil || !fromFile {
		t.Fatalf("keygen's file: public key from the file %v (%v), want true", fromFile, err)
	}

	// OpenSSL reads the file as its own: the private key from the first
	// block, and it writes the same public block.
	if openssl, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl is not installed (apt-get install openssl): OpenSSL's reading not checked")
	} else {
		out, err := exec.Command(openssl, "pkey", "-in", path, "-pubout").CombinedOutput()
		if err != nil || !bytes.Equal(out, pem.EncodeToMemory(pubBlock)) {
			t.Fatalf("openssl pkey -pubout: %v\n%s\nwant\n%s", err, out, pem.EncodeToMemory(pubBlock))
		}
	}

	// Another key's public block: the start takes it as it is (it derives
	// nothing), and the first signature refuses, every time.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherDER, _ := x509.MarshalPKIXPublicKey(other.Public())
	swapped := filepath.Join(dir, "swapped.key")
	os.WriteFile(swapped, append(pem.EncodeToMemory(privBlock), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: otherDER})...), 0o600)
	bad, err := Open(context.Background(), KeyRef{File: swapped})
	if err != nil {
		t.Fatalf("open with another key's public block: %v (the check belongs to the first signature)", err)
	}
	defer bad.Close()
	if !bad.PublicKey().Equal(other.Public()) {
		t.Fatal("the public key was derived at open, not taken from the file")
	}
	for range 2 {
		if sig, err := bad.Sign([]byte("m")); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("sign with a mismatched public block: %x, %v; want ErrKeyMismatch", sig, err)
		}
	}

	// A private key that x509 reads (PKCS#8 v2 here) is checked at once.
	seed := privBlock.Bytes[len(ed25519PKCS8Prefix):]
	v2 := append([]byte{0x30, 0x51, 0x02, 0x01, 0x01}, privBlock.Bytes[5:]...)
	v2 = append(append(v2, 0x81, 0x21, 0x00), ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)...)
	cases := []struct {
		name      string
		priv, pub []byte
		wantErr   string // "": opens, with keygen's public key
	}{
		{"v2 and another key's", v2, otherDER, ErrKeyMismatch.Error()},
		{"v2 and its own", v2, pubBlock.Bytes, ""},
		{"an ECDSA public key", privBlock.Bytes, ecdsaSPKI(t), "PUBLIC KEY block: key is *ecdsa.PublicKey"},
		{"not DER", privBlock.Bytes, []byte("garbage"), "PUBLIC KEY block"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".key")
		os.WriteFile(p, append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: c.priv}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: c.pub})...), 0o600)
		ks, err := Open(context.Background(), KeyRef{File: p})
		if err == nil {
			if c.wantErr != "" || !ks.PublicKey().Equal(want) {
				t.Errorf("%s: opens with public key %x, want an error %q", c.name, ks.PublicKey(), c.wantErr)
			}
			ks.Close()
		} else if c.wantErr == "" || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: open gives %v, want %q", c.name, err, c.wantErr)
		}
	}
}

func ecdsaSPKI(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
