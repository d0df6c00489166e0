package hsm

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Keystore holds a node's identity and storage key. Implementations are safe
// for concurrent use.
type Keystore interface {
	// PublicKey is the Ed25519 identity key.
	PublicKey() ed25519.PublicKey
	// Sign returns a pure Ed25519 signature of msg, already verified.
	Sign(msg []byte) ([]byte, error)
	// WrapDataKey seals a data key under the storage key.
	WrapDataKey(dataKey []byte) ([]byte, error)
	// UnwrapDataKey opens what WrapDataKey sealed.
	UnwrapDataKey(wrapped []byte) ([]byte, error)
	// String names the keystore for logs, without secrets.
	String() string
	// Close releases the keystore; later calls fail. Closing twice is safe.
	Close() error
}

// Distinct failures, for errors.Is. Messages say what to do.
var (
	ErrNoKey       = errors.New("key not found (create it with `gardend keygen`)")
	ErrNoPKCS11    = errors.New("this gardend build has no PKCS#11 support: use the pkcs11 build (bin/gardend-pkcs11) or a software key file")
	ErrModule      = errors.New("cannot load the PKCS#11 module")
	ErrNoToken     = errors.New("no matching PKCS#11 token")
	ErrBadPIN      = errors.New("wrong PIN")
	ErrPINLocked   = errors.New("PIN locked: too many wrong attempts (unlock it with the SO PIN)")
	ErrTokenGone   = errors.New("token removed or not responding")
	ErrKeyChanged  = errors.New("the token's identity key is not the one this keystore opened")
	ErrBadSig      = errors.New("the key produced a signature that does not verify")
	ErrUnwrap      = errors.New("data key does not unwrap: wrong storage key, or the wrapped key is damaged")
	ErrKeyFileMode = errors.New("key file is readable by others")
	ErrKeyMismatch = errors.New("the key file's PUBLIC KEY block is not the public key of its PRIVATE KEY: one of the two was changed")
	ErrClosed      = errors.New("keystore closed")
)

// Open opens an existing identity and storage key. A missing key is ErrNoKey.
func Open(ctx context.Context, ref KeyRef) (Keystore, error) {
	ks, _, err := open(ctx, ref, false)
	return ks, err
}

// Create opens the identity and storage key, creating whatever is missing.
// It is idempotent: created is true only if something was generated.
func Create(ctx context.Context, ref KeyRef) (ks Keystore, created bool, err error) {
	return open(ctx, ref, true)
}

func open(ctx context.Context, ref KeyRef, create bool) (Keystore, bool, error) {
	switch {
	case ref.Token != nil:
		return openToken(ctx, ref.Token, create)
	case ref.File != "":
		return openSoft(ref.File, create)
	}
	return nil, false, fmt.Errorf("no key reference given")
}

// verify checks a signature made by a backend before anyone else sees it.
func verify(pub ed25519.PublicKey, msg, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return ErrBadSig
	}
	return nil
}
