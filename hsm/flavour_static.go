//go:build !pkcs11

package hsm

// Flavour names the build: "static" (software keystore only, CGO_ENABLED=0)
// or "pkcs11" (dynamically linked, can use a hardware token).
const Flavour = "static"
