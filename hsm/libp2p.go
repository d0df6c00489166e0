package hsm

import (
	"crypto/subtle"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	pb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PrivKey adapts a Keystore to libp2p's crypto.PrivKey, so the Noise
// handshake and every signed record are signed by the keystore. Raw always
// fails: the private key is never handed out, whatever the backend.
type PrivKey struct {
	ks  Keystore
	pub crypto.PubKey
}

var _ crypto.PrivKey = (*PrivKey)(nil)

// NewPrivKey wraps ks.
func NewPrivKey(ks Keystore) (*PrivKey, error) {
	pub, err := crypto.UnmarshalEd25519PublicKey(ks.PublicKey())
	if err != nil {
		return nil, err
	}
	return &PrivKey{ks: ks, pub: pub}, nil
}

// PeerID is the libp2p peer ID of the keystore's identity.
func (k *PrivKey) PeerID() (peer.ID, error) { return peer.IDFromPublicKey(k.pub) }

func (k *PrivKey) Sign(msg []byte) ([]byte, error) { return k.ks.Sign(msg) }

func (k *PrivKey) GetPublic() crypto.PubKey { return k.pub }

func (k *PrivKey) Type() pb.KeyType { return pb.KeyType_Ed25519 }

func (k *PrivKey) Raw() ([]byte, error) {
	return nil, fmt.Errorf("the private key of %s cannot be exported", k.ks)
}

// Equals compares identities: two private keys are the same key when their
// public keys are (the raw private bytes are never available).
func (k *PrivKey) Equals(o crypto.Key) bool {
	op, ok := o.(crypto.PrivKey)
	if !ok || op.Type() != k.Type() {
		return false
	}
	a, err1 := k.pub.Raw()
	b, err2 := op.GetPublic().Raw()
	return err1 == nil && err2 == nil && subtle.ConstantTimeCompare(a, b) == 1
}
