package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"

	"gardend/config"
	"gardend/hsm"
)

// keyFlags are the flags that name the identity: --key, or --config to take
// `key` from a configuration file.
type keyFlags struct {
	key, config *string
}

func bindKeyFlags(fs *flag.FlagSet) keyFlags {
	return keyFlags{
		key:    fs.String("key", "", "identity: a pkcs11: URI (RFC 7512) or a key file path"),
		config: fs.String("config", "", "take the identity from this configuration file's `key`"),
	}
}

// ref resolves the key reference; a usage problem returns code != 0.
func (k keyFlags) ref(e *env, fs *flag.FlagSet) (hsm.KeyRef, int) {
	switch {
	case *k.key != "" && *k.config != "":
		return hsm.KeyRef{}, usageError(e, fs, "give --key or --config, not both")
	case *k.key != "":
		ref, err := hsm.ParseKeyRef(*k.key)
		if err != nil {
			return hsm.KeyRef{}, usageError(e, fs, "--key: %v", err)
		}
		return ref, 0
	case *k.config != "":
		c, err := config.Load(*k.config)
		if err != nil {
			fmt.Fprintln(e.stderr, err)
			return hsm.KeyRef{}, exitConfig
		}
		ref, err := c.KeyRef()
		if err != nil {
			fmt.Fprintf(e.stderr, "%s: key: %v\n", *k.config, err)
			return hsm.KeyRef{}, exitConfig
		}
		return ref, 0
	}
	return hsm.KeyRef{}, usageError(e, fs, "name the identity with --key or --config")
}

const keyHelp = `
The identity is an Ed25519 key. With a pkcs11: URI it lives in a PKCS#11
token (pkcs11 build only) and never leaves it, e.g.
  pkcs11:token=gardend;object=identity?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/gardend/pin
With a path it is a software key file (mode 0600): PEM, the private key
(PKCS#8) then its public key, as OpenSSL writes them. A file without the
public key (an older keygen's) works; the start then derives it.`

// openIdentity parses the flags of keygen and id and opens (create: or
// creates) the keystore they name. ks is nil when the caller must return code.
func openIdentity(ctx context.Context, e *env, fs *flag.FlagSet, args []string, create bool) (ks hsm.Keystore, id string, created bool, code int) {
	kf := bindKeyFlags(fs)
	if code, ok := parseFlags(e, fs, args); !ok {
		return nil, "", false, code
	}
	if fs.NArg() > 0 {
		return nil, "", false, usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	ref, code := kf.ref(e, fs)
	if code != 0 {
		return nil, "", false, code
	}
	var err error
	if create {
		ks, created, err = hsm.Create(ctx, ref)
	} else {
		ks, err = hsm.Open(ctx, ref)
	}
	if err == nil {
		// One signature proves the identity whole: a software key file's
		// public key is otherwise checked only when the daemon first signs.
		if _, err = ks.Sign([]byte("gardend identity check")); err == nil {
			id, err = peerID(ks)
		}
		if err != nil {
			ks.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "gardend %s: %v\n", fs.Name(), err)
		return nil, "", false, exitFailure
	}
	return ks, id, created, exitOK
}

func runKeygen(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "keygen", "",
		"Create the node identity and its storage key where they are missing, and\n"+
			"print the peer ID. Running it again changes nothing: it prints the\n"+
			"existing peer ID."+keyHelp)
	ks, id, created, code := openIdentity(ctx, e, fs, args, true)
	if ks == nil {
		return code
	}
	defer ks.Close()
	what := "exists"
	if created {
		what = "created"
	}
	fmt.Fprintf(e.stderr, "identity %s in %s\n", what, ks)
	fmt.Fprintln(e.stdout, id)
	return exitOK
}

func runID(ctx context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "id", "", "Print the peer ID and the Ed25519 public key (base64) of an existing identity."+keyHelp)
	ks, id, _, code := openIdentity(ctx, e, fs, args, false)
	if ks == nil {
		return code
	}
	defer ks.Close()
	fmt.Fprintf(e.stdout, "peer-id: %s\npublic-key: %s\n", id, base64.StdEncoding.EncodeToString(ks.PublicKey()))
	return exitOK
}

func peerID(ks hsm.Keystore) (string, error) {
	k, err := hsm.NewPrivKey(ks)
	if err != nil {
		return "", err
	}
	id, err := k.PeerID()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}
