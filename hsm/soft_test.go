package hsm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
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
