package dtn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
)

// sealer encrypts values and hashes identifiers with keys derived from the
// database's data key. The data key itself is stored only wrapped by the
// keystore's storage key.
type sealer struct {
	aead    cipher.AEAD
	hashKey []byte
	// macs keeps keyed HMAC states for reuse: keying one costs two SHA-256
	// blocks and several allocations, and every queue operation hashes
	// two or three identifiers.
	macs sync.Pool
}

const (
	nonceSize = 12
	hashSize  = 16 // bytes of HMAC-SHA256 kept for index keys
)

func newSealer(dataKey []byte) (*sealer, error) {
	if len(dataKey) != 32 {
		return nil, errors.New("data key must be 32 bytes")
	}
	encKey, err := hkdf.Key(sha256.New, dataKey, nil, "gardend/v1/db/aead", 32)
	if err != nil {
		return nil, err
	}
	hashKey, err := hkdf.Key(sha256.New, dataKey, nil, "gardend/v1/db/index", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, hashKey: hashKey}, nil
}

// aad binds a value to its place: moving it to another bucket or key makes
// it fail authentication.
func aad(bucket string, key []byte) []byte {
	a := make([]byte, 0, len(bucket)+1+len(key))
	a = append(a, bucket...)
	a = append(a, 0)
	return append(a, key...)
}

func (s *sealer) seal(bucket string, key, plain []byte) []byte {
	out := make([]byte, nonceSize, nonceSize+len(plain)+s.aead.Overhead())
	rand.Read(out) // never fails: crypto/rand aborts the process instead
	return s.aead.Seal(out, out[:nonceSize], plain, aad(bucket, key))
}

func (s *sealer) open(bucket string, key, sealed []byte) ([]byte, error) {
	if len(sealed) < nonceSize+s.aead.Overhead() {
		return nil, &CorruptError{Bucket: bucket, Key: key}
	}
	plain, err := s.aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad(bucket, key))
	if err != nil {
		return nil, &CorruptError{Bucket: bucket, Key: key}
	}
	return plain, nil
}

// hash is a keyed hash of identifiers, used as an index key so that no
// clear peer or resource ID is ever written. Parts are length-prefixed so
// ("ab","c") and ("a","bc") differ.
func (s *sealer) hash(domain string, parts ...[]byte) []byte {
	m, _ := s.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, s.hashKey)
	} else {
		m.Reset()
	}
	defer s.macs.Put(m)
	m.Write([]byte(domain))
	for _, p := range parts {
		var l [4]byte
		l[0], l[1], l[2], l[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		m.Write(l[:])
		m.Write(p)
	}
	return m.Sum(nil)[:hashSize]
}
