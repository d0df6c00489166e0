//go:build pkcs11

package hsm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 v3 EdDSA constants, absent from miekg/pkcs11 v1.1.2.
const (
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
	ckkECEdwards           = 0x40
)

// oidEd25519 is CKA_EC_PARAMS for Ed25519: the DER OID 1.3.101.112.
var oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}

// defaultObject labels the identity when the URI names no object; the
// storage key is the object label plus storageSuffix.
const (
	defaultObject = "gardend-identity"
	storageSuffix = "-storage"
)

// token is a keystore in a PKCS#11 token. One session, guarded by mu, does
// all the work: tokens serialise operations anyway, and one session makes
// recovery after a re-plug simple (re-open, re-login, re-find, retry once).
type token struct {
	uri    *URI
	pin    string
	module string
	object string

	mu      sync.Mutex
	ctx     *pkcs11.Ctx
	owner   bool // our C_Initialize succeeded: we, and only we, C_Finalize
	session pkcs11.SessionHandle
	live    bool // session is open and logged in
	priv    pkcs11.ObjectHandle
	aes     pkcs11.ObjectHandle
	pub     ed25519.PublicKey
	closed  bool
}

func openToken(_ context.Context, u *URI, create bool) (Keystore, bool, error) {
	pin, err := u.PIN()
	if err != nil {
		return nil, false, err
	}
	module := u.ModulePath
	if module == "" {
		module = u.ModuleName // a bare name is resolved by dlopen's search path
	}
	t := &token{uri: u, pin: pin, module: module, object: u.Object}
	if t.object == "" {
		t.object = defaultObject
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(); err != nil {
		return nil, false, err
	}
	created, err := t.connect(create)
	if err != nil {
		t.shutdown()
		return nil, false, err
	}
	return t, created, nil
}

// load dlopens the module and initialises it, remembering whether we own it.
func (t *token) load() error {
	t.ctx = pkcs11.New(t.module)
	if t.ctx == nil {
		return fmt.Errorf("%w %q (is the library installed? for SoftHSM: apt-get install softhsm2)", ErrModule, t.module)
	}
	return t.initialize()
}

func (t *token) initialize() error {
	err := t.ctx.Initialize()
	switch {
	case err == nil:
		t.owner = true
	case isRV(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED):
		t.owner = false // another handle in this process owns the module
	default:
		return fmt.Errorf("%w %q: C_Initialize: %v", ErrModule, t.module, err)
	}
	return nil
}

// connect finds the token, opens and logs in a session, and finds (or, with
// create, generates) the keys. Called with mu held.
func (t *token) connect(create bool) (created bool, err error) {
	slot, err := t.findSlot()
	if err != nil {
		return false, err
	}
	sh, err := t.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return false, fmt.Errorf("%w: open session: %v", classify(err), err)
	}
	t.session = sh
	if t.pin != "" {
		if err := t.ctx.Login(sh, pkcs11.CKU_USER, t.pin); err != nil && !isRV(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
			t.ctx.CloseSession(sh)
			return false, fmt.Errorf("log in to %s: %w", t.uri, classify(err))
		}
	}
	t.live = true
	priv, pubObj, err := t.findIdentity()
	if errors.Is(err, ErrNoKey) && create {
		pubObj, priv, err = t.generateIdentity()
		created = err == nil
	}
	if err != nil {
		return false, err
	}
	pub, err := t.readPublic(pubObj)
	if err != nil {
		return false, err
	}
	if t.pub != nil && !bytes.Equal(pub, t.pub) {
		return false, ErrKeyChanged
	}
	aes, err := t.findObject(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES, t.object+storageSuffix)
	if errors.Is(err, ErrNoKey) && create {
		aes, err = t.generateStorageKey()
		created = created || err == nil
	}
	if err != nil {
		return false, fmt.Errorf("storage key: %w", err)
	}
	t.priv, t.aes, t.pub = priv, aes, pub
	return created, nil
}

func (t *token) findSlot() (uint, error) {
	slots, err := t.ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("%w: C_GetSlotList: %v", ErrTokenGone, err)
	}
	for _, s := range slots {
		if t.uri.SlotID != nil && *t.uri.SlotID != s {
			continue
		}
		ti, err := t.ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		if (t.uri.Token == "" || ti.Label == t.uri.Token) &&
			(t.uri.Serial == "" || ti.SerialNumber == t.uri.Serial) &&
			(t.uri.Manufacturer == "" || ti.ManufacturerID == t.uri.Manufacturer) &&
			(t.uri.Model == "" || ti.Model == t.uri.Model) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: %s (present tokens are listed by `pkcs11-tool --module %s -L`)", ErrNoToken, t.uri, t.module)
}

func (t *token) findObject(class, keyType uint, label string) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, keyType),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if len(t.uri.ID) > 0 && class != pkcs11.CKO_SECRET_KEY {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, t.uri.ID))
	}
	if err := t.ctx.FindObjectsInit(t.session, tmpl); err != nil {
		return 0, classify(err)
	}
	objs, _, err := t.ctx.FindObjects(t.session, 2)
	if ferr := t.ctx.FindObjectsFinal(t.session); err == nil {
		err = ferr
	}
	if err != nil {
		return 0, classify(err)
	}
	switch len(objs) {
	case 0:
		return 0, fmt.Errorf("object %q in %s: %w", label, t.uri, ErrNoKey)
	case 1:
		return objs[0], nil
	}
	return 0, fmt.Errorf("%d objects labelled %q in %s: give an id= to choose", len(objs), label, t.uri)
}

func (t *token) findIdentity() (priv, pub pkcs11.ObjectHandle, err error) {
	priv, err = t.findObject(pkcs11.CKO_PRIVATE_KEY, ckkECEdwards, t.object)
	if err != nil {
		return 0, 0, err
	}
	pub, err = t.findObject(pkcs11.CKO_PUBLIC_KEY, ckkECEdwards, t.object)
	return priv, pub, err
}

func (t *token) generateIdentity() (pub, priv pkcs11.ObjectHandle, err error) {
	id := t.uri.ID
	if len(id) == 0 {
		id = []byte(t.object)
	}
	pubTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.object),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	privTmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.object),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}
	pub, priv, err = t.ctx.GenerateKeyPair(t.session,
		[]*pkcs11.Mechanism{pkcs11.NewMechanism(ckmECEdwardsKeyPairGen, nil)}, pubTmpl, privTmpl)
	if err != nil {
		return 0, 0, fmt.Errorf("generate Ed25519 key in %s: %w", t.uri, classify(err))
	}
	return pub, priv, nil
}

func (t *token) generateStorageKey() (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, t.object+storageSuffix),
	}
	h, err := t.ctx.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return 0, fmt.Errorf("generate AES storage key in %s: %w", t.uri, classify(err))
	}
	return h, nil
}

// readPublic reads CKA_EC_POINT: a DER OCTET STRING (04 20 ‖ key) from
// SoftHSM, the raw 32 bytes from some other tokens.
func (t *token) readPublic(obj pkcs11.ObjectHandle) (ed25519.PublicKey, error) {
	attrs, err := t.ctx.GetAttributeValue(t.session, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", classify(err))
	}
	p := attrs[0].Value
	switch {
	case len(p) == ed25519.PublicKeySize:
		return ed25519.PublicKey(bytes.Clone(p)), nil
	case len(p) == 2+ed25519.PublicKeySize && p[0] == 0x04 && p[1] == ed25519.PublicKeySize:
		return ed25519.PublicKey(bytes.Clone(p[2:])), nil
	}
	return nil, fmt.Errorf("public key CKA_EC_POINT has an unexpected form (%d bytes)", len(p))
}

// do runs op on a live session; when the token went away it reconnects once
// and retries, so a re-plugged token is transparent to callers.
func (t *token) do(op func() error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if !t.live {
		if err := t.reconnect(); err != nil {
			return err
		}
	}
	err := op()
	if err == nil || !errors.Is(classify(err), ErrTokenGone) {
		return err
	}
	if rerr := t.reconnect(); rerr != nil {
		return fmt.Errorf("%w (reconnect: %v)", classify(err), rerr)
	}
	return op()
}

// reconnect drops the session and builds a new one. The owner re-initialises
// the module so a re-plugged token shows up in the slot list again.
func (t *token) reconnect() error {
	if t.live {
		t.ctx.CloseSession(t.session)
		t.live = false
	}
	if t.owner {
		t.ctx.Finalize()
		t.owner = false
	}
	if err := t.initialize(); err != nil {
		return err
	}
	_, err := t.connect(false)
	return err
}

func (t *token) PublicKey() ed25519.PublicKey { return t.pub }

func (t *token) Sign(msg []byte) ([]byte, error) {
	var sig []byte
	err := t.do(func() error {
		if err := t.ctx.SignInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(ckmEdDSA, nil)}, t.priv); err != nil {
			return err
		}
		var err error
		sig, err = t.ctx.Sign(t.session, msg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", t.uri, classify(err))
	}
	if err := verify(t.pub, msg, sig); err != nil {
		return nil, fmt.Errorf("sign with %s: %w", t.uri, err)
	}
	return sig, nil
}

func (t *token) WrapDataKey(dataKey []byte) ([]byte, error) {
	nonce := make([]byte, gcmNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var ct []byte
	err := t.do(func() error {
		params := pkcs11.NewGCMParams(nonce, wrapAAD, 128)
		defer params.Free()
		if err := t.ctx.EncryptInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, t.aes); err != nil {
			return err
		}
		var err error
		ct, err = t.ctx.Encrypt(t.session, dataKey)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wrap data key with %s: %w", t.uri, classify(err))
	}
	out := append([]byte{wrapVersion}, nonce...)
	return append(out, ct...), nil
}

func (t *token) UnwrapDataKey(wrapped []byte) ([]byte, error) {
	if len(wrapped) < 1+gcmNonceSize+16 || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	nonce, ct := wrapped[1:1+gcmNonceSize], wrapped[1+gcmNonceSize:]
	var dk []byte
	err := t.do(func() error {
		params := pkcs11.NewGCMParams(bytes.Clone(nonce), wrapAAD, 128)
		defer params.Free()
		if err := t.ctx.DecryptInit(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, t.aes); err != nil {
			return err
		}
		var err error
		if dk, err = t.ctx.Decrypt(t.session, ct); err != nil {
			// The key and session were good (DecryptInit passed): a failure
			// here is the data. SoftHSM reports a bad GCM tag as
			// CKR_GENERAL_ERROR; do not mistake it for a lost token.
			return ErrUnwrap
		}
		return nil
	})
	switch {
	case err == nil:
		return dk, nil
	case errors.Is(err, ErrUnwrap):
		return nil, ErrUnwrap
	}
	return nil, fmt.Errorf("unwrap data key with %s: %w", t.uri, classify(err))
}

func (t *token) String() string { return t.uri.String() }

func (t *token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.shutdown()
	return nil
}

// shutdown closes the session and, if we own the module, finalises it.
func (t *token) shutdown() {
	if t.ctx == nil {
		return
	}
	if t.live {
		t.ctx.CloseSession(t.session)
		t.live = false
	}
	if t.owner {
		t.ctx.Finalize()
		t.owner = false
	}
	t.ctx.Destroy()
	t.ctx = nil
}

func isRV(err error, rv uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == rv
}

// classify maps PKCS#11 return values onto this package's errors.
func classify(err error) error {
	var e pkcs11.Error
	if !errors.As(err, &e) {
		return err
	}
	switch uint(e) {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_INVALID:
		return fmt.Errorf("%w (%v)", ErrBadPIN, err)
	case pkcs11.CKR_PIN_LOCKED:
		return fmt.Errorf("%w (%v)", ErrPINLocked, err)
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_SLOT_ID_INVALID, pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_GENERAL_ERROR:
		return fmt.Errorf("%w (%v)", ErrTokenGone, err)
	}
	return err
}
