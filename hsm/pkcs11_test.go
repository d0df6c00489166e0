//go:build pkcs11

package hsm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/pkcs11"

	"gardend/hsm/hsmtest"
)

func tokenRef(t *testing.T, uri string) KeyRef {
	t.Helper()
	ref, err := ParseKeyRef(uri)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func newToken(t *testing.T) (*hsmtest.SoftHSM, KeyRef) {
	t.Helper()
	s := hsmtest.New(t)
	s.InitToken(t, "gardend", "1234")
	return s, tokenRef(t, s.URI("gardend", "identity", "1234"))
}

func mustCreate(t *testing.T, ref KeyRef) Keystore {
	t.Helper()
	ks, _, err := Create(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

func TestTokenKeygenIsIdempotent(t *testing.T) {
	_, ref := newToken(t)
	if _, err := Open(context.Background(), ref); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open before keygen: %v, want ErrNoKey", err)
	}
	ks, created, err := Create(context.Background(), ref)
	if err != nil || !created {
		t.Fatalf("first create: created=%v err=%v", created, err)
	}
	pub := ks.PublicKey()
	ks.Close()
	ks, created, err = Create(context.Background(), ref)
	if err != nil || created {
		t.Fatalf("second create: created=%v err=%v", created, err)
	}
	defer ks.Close()
	if !bytes.Equal(pub, ks.PublicKey()) {
		t.Fatal("second create changed the identity")
	}
}

func TestTokenSignsDeterministically(t *testing.T) {
	_, ref := newToken(t)
	ks := mustCreate(t, ref)
	msg := []byte("peer record")
	sig, err := ks.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(ks.PublicKey(), msg, sig) {
		t.Fatal("token signature does not verify with Go's ed25519")
	}
	again, err := ks.Sign(msg)
	if err != nil || !bytes.Equal(sig, again) {
		t.Fatalf("Ed25519 must be deterministic: %x vs %x (%v)", sig, again, err)
	}
	concurrentSign(t, ks)
}

func TestTokenKeysCannotBeRead(t *testing.T) {
	_, ref := newToken(t)
	tk := mustCreate(t, ref).(*token)
	for name, obj := range map[string]pkcs11.ObjectHandle{"identity": tk.priv, "storage": tk.aes} {
		attrs, err := tk.ctx.GetAttributeValue(tk.session, obj, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		if attrs[0].Value[0] != 1 || attrs[1].Value[0] != 1 || attrs[2].Value[0] != 0 {
			t.Errorf("%s key: CKA_TOKEN=%v CKA_SENSITIVE=%v CKA_EXTRACTABLE=%v", name, attrs[0].Value, attrs[1].Value, attrs[2].Value)
		}
		if v, err := tk.ctx.GetAttributeValue(tk.session, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); !isRV(err, pkcs11.CKR_ATTRIBUTE_SENSITIVE) {
			t.Errorf("%s key: reading CKA_VALUE gave %d attributes, %v; want CKR_ATTRIBUTE_SENSITIVE", name, len(v), err)
		}
	}
	pk, err := NewPrivKey(tk)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := pk.Raw(); err == nil {
		t.Fatalf("Raw() exported %d bytes", len(raw))
	}
}

func TestTokenDistinctErrors(t *testing.T) {
	s, ref := newToken(t)
	mustCreate(t, ref).Close()
	cases := map[string]struct {
		uri  string
		want error
	}{
		"wrong PIN":      {s.URI("gardend", "identity", "0000"), ErrBadPIN},
		"missing token":  {s.URI("nosuchtoken", "identity", "1234"), ErrNoToken},
		"missing key":    {s.URI("gardend", "other", "1234"), ErrNoKey},
		"missing module": {"pkcs11:token=gardend?module-path=/nonexistent/libnothing.so&pin-value=1234", ErrModule},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ks, err := Open(context.Background(), tokenRef(t, tc.uri))
			if err == nil {
				ks.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// SoftHSM never locks a PIN (measured: eleven wrong PINs in a row all
	// give CKR_PIN_INCORRECT), so the locked case is checked on the mapping.
	if err := classify(pkcs11.Error(pkcs11.CKR_PIN_LOCKED)); !errors.Is(err, ErrPINLocked) {
		t.Fatalf("CKR_PIN_LOCKED maps to %v", err)
	}
}

func TestTokenWrapsDataKey(t *testing.T) {
	s, ref := newToken(t)
	ks := mustCreate(t, ref)
	dk := bytes.Repeat([]byte{0x5a}, 32)
	w, err := ks.WrapDataKey(dk)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ks.UnwrapDataKey(w); err != nil || !bytes.Equal(got, dk) {
		t.Fatalf("unwrap: %x %v", got, err)
	}
	w2, _ := ks.WrapDataKey(dk)
	if bytes.Equal(w, w2) {
		t.Fatal("two wraps share a nonce")
	}
	bad := bytes.Clone(w)
	bad[len(bad)-1] ^= 1
	if _, err := ks.UnwrapDataKey(bad); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("tampered: %v", err)
	}
	// Another identity in the same token has another storage key.
	other := mustCreate(t, tokenRef(t, s.URI("gardend", "second", "1234")))
	if _, err := other.UnwrapDataKey(w); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("other storage key unwrapped: %v", err)
	}
}

func TestTwoHandlesInOneProcess(t *testing.T) {
	_, ref := newToken(t)
	a := mustCreate(t, ref)
	b, err := Open(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, ks := range []Keystore{a, b} {
		if _, err := ks.Sign([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// Closing the handle that owns the module must not strand the other.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	msg := []byte("after the other handle closed")
	sig, err := b.Sign(msg)
	if err != nil || !ed25519.Verify(b.PublicKey(), msg, sig) {
		t.Fatalf("surviving handle: %v", err)
	}
}

func TestTokenRemovedWhileRunning(t *testing.T) {
	s, ref := newToken(t)
	ks := mustCreate(t, ref)
	if _, err := ks.Sign([]byte("before")); err != nil {
		t.Fatal(err)
	}
	dirs, err := os.ReadDir(s.TokensDir())
	if err != nil || len(dirs) != 1 {
		t.Fatalf("token dirs: %v %v", dirs, err)
	}
	tokenDir := filepath.Join(s.TokensDir(), dirs[0].Name())
	away := filepath.Join(s.Dir, "unplugged")
	if err := os.Rename(tokenDir, away); err != nil {
		t.Fatal(err)
	}
	_, err = ks.Sign([]byte("while unplugged"))
	t.Logf("sign while unplugged: %v", err)
	if err == nil {
		t.Fatal("signed with the token unplugged")
	}
	if err := os.Rename(away, tokenDir); err != nil {
		t.Fatal(err)
	}
	msg := []byte("after re-plug")
	sig, err := ks.Sign(msg)
	if err != nil || !ed25519.Verify(ks.PublicKey(), msg, sig) {
		t.Fatalf("sign after re-plug: %v", err)
	}
}
