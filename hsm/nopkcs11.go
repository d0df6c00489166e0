//go:build !pkcs11

package hsm

import "context"

func openToken(context.Context, *URI, bool) (Keystore, bool, error) {
	return nil, false, ErrNoPKCS11
}
