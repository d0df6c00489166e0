package hsm

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// URI is a parsed PKCS#11 URI (RFC 7512) naming a token and an object in it.
// Only the attributes gardend uses are kept; other standard attributes are
// accepted and ignored, unknown ones are errors (a typo must not silently
// select another token).
type URI struct {
	Token        string // path: token label
	Manufacturer string // path: token manufacturer
	Serial       string // path: token serial number
	Model        string // path: token model
	Object       string // path: object label (CKA_LABEL)
	ID           []byte // path: object id (CKA_ID)
	SlotID       *uint  // path: slot-id
	ModulePath   string // query: module-path, the PKCS#11 library
	ModuleName   string // query: module-name
	PINValue     string // query: pin-value (discouraged: the PIN ends up in config)
	PINSource    string // query: pin-source, a file path or file: URI holding the PIN
}

var knownPath = map[string]bool{
	"token": true, "manufacturer": true, "serial": true, "model": true, "object": true, "id": true,
	"type": true, "library-manufacturer": true, "library-description": true, "library-version": true,
	"slot-manufacturer": true, "slot-description": true, "slot-id": true,
}

var knownQuery = map[string]bool{"pin-source": true, "pin-value": true, "module-name": true, "module-path": true}

// ErrBadURI wraps every PKCS#11 URI parse error.
var ErrBadURI = errors.New("invalid PKCS#11 URI")

// ParseURI parses a pkcs11: URI.
func ParseURI(s string) (*URI, error) {
	rest, ok := strings.CutPrefix(s, "pkcs11:")
	if !ok {
		return nil, fmt.Errorf("%w: %q does not start with \"pkcs11:\"", ErrBadURI, s)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	attr := func(kv string, known map[string]bool, where string) (string, string, error) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", "", fmt.Errorf("%w: %s attribute %q is not name=value", ErrBadURI, where, kv)
		}
		if !known[k] && !strings.HasPrefix(k, "x-") {
			return "", "", fmt.Errorf("%w: unknown %s attribute %q", ErrBadURI, where, k)
		}
		if seen[k] {
			return "", "", fmt.Errorf("%w: attribute %q given twice", ErrBadURI, k)
		}
		seen[k] = true
		dv, err := url.PathUnescape(v)
		if err != nil {
			return "", "", fmt.Errorf("%w: attribute %q: %v", ErrBadURI, k, err)
		}
		return k, dv, nil
	}
	if path != "" {
		for _, kv := range strings.Split(path, ";") {
			k, v, err := attr(kv, knownPath, "path")
			if err != nil {
				return nil, err
			}
			switch k {
			case "token":
				u.Token = v
			case "manufacturer":
				u.Manufacturer = v
			case "serial":
				u.Serial = v
			case "model":
				u.Model = v
			case "object":
				u.Object = v
			case "id":
				u.ID = []byte(v)
			case "slot-id":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("%w: slot-id %q is not a number", ErrBadURI, v)
				}
				id := uint(n)
				u.SlotID = &id
			}
		}
	}
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			k, v, err := attr(kv, knownQuery, "query")
			if err != nil {
				return nil, err
			}
			switch k {
			case "module-path":
				u.ModulePath = v
			case "module-name":
				u.ModuleName = v
			case "pin-value":
				u.PINValue = v
			case "pin-source":
				u.PINSource = v
			}
		}
	}
	if u.PINValue != "" && u.PINSource != "" {
		return nil, fmt.Errorf("%w: give pin-value or pin-source, not both", ErrBadURI)
	}
	if u.Token == "" && u.Serial == "" && u.SlotID == nil {
		return nil, fmt.Errorf("%w: name the token with token=, serial= or slot-id=", ErrBadURI)
	}
	if u.ModulePath == "" && u.ModuleName == "" {
		return nil, fmt.Errorf("%w: name the PKCS#11 library with module-path= (e.g. /usr/lib/softhsm/libsofthsm2.so)", ErrBadURI)
	}
	return u, nil
}

// String formats the URI with any PIN value redacted, for logs and errors.
func (u *URI) String() string {
	var path []string
	add := func(k, v string) {
		if v != "" {
			path = append(path, k+"="+escape(v))
		}
	}
	add("token", u.Token)
	add("manufacturer", u.Manufacturer)
	add("serial", u.Serial)
	add("model", u.Model)
	add("object", u.Object)
	add("id", string(u.ID))
	if u.SlotID != nil {
		path = append(path, "slot-id="+strconv.FormatUint(uint64(*u.SlotID), 10))
	}
	var query []string
	if u.ModulePath != "" {
		query = append(query, "module-path="+escape(u.ModulePath))
	}
	if u.ModuleName != "" {
		query = append(query, "module-name="+escape(u.ModuleName))
	}
	if u.PINSource != "" {
		query = append(query, "pin-source="+escape(u.PINSource))
	}
	if u.PINValue != "" {
		query = append(query, "pin-value=REDACTED")
	}
	s := "pkcs11:" + strings.Join(path, ";")
	if len(query) > 0 {
		s += "?" + strings.Join(query, "&")
	}
	return s
}

// escape percent-encodes everything outside RFC 7512's unreserved set plus the
// characters it allows unescaped in attribute values.
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:[]@!$'()*+,/", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// PIN returns the user PIN: pin-value, or the first line of the pin-source
// file. An empty string means no PIN was given.
func (u *URI) PIN() (string, error) {
	if u.PINValue != "" {
		return u.PINValue, nil
	}
	if u.PINSource == "" {
		return "", nil
	}
	path := strings.TrimPrefix(u.PINSource, "file:")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read pin-source: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

// KeyRef says where the node identity lives: in a PKCS#11 token (Token set) or
// in a software key file (File set).
type KeyRef struct {
	Token *URI
	File  string
}

// ParseKeyRef parses the `key` setting: a pkcs11: URI, a file: URI or a path.
func ParseKeyRef(s string) (KeyRef, error) {
	switch {
	case s == "":
		return KeyRef{}, errors.New("no key given: use a pkcs11: URI or a key file path")
	case strings.HasPrefix(s, "pkcs11:"):
		u, err := ParseURI(s)
		if err != nil {
			return KeyRef{}, err
		}
		return KeyRef{Token: u}, nil
	case strings.HasPrefix(s, "file:"):
		p := strings.TrimPrefix(strings.TrimPrefix(s, "file:"), "//")
		if p == "" {
			return KeyRef{}, errors.New("file: key reference has no path")
		}
		return KeyRef{File: p}, nil
	case strings.Contains(s, ":") && !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "."):
		scheme, _, _ := strings.Cut(s, ":")
		return KeyRef{}, fmt.Errorf("unsupported key scheme %q: use pkcs11: or a file path", scheme)
	default:
		return KeyRef{File: s}, nil
	}
}

// String names the key for humans without revealing a PIN.
func (k KeyRef) String() string {
	if k.Token != nil {
		return k.Token.String()
	}
	return "file:" + k.File
}
