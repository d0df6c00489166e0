package dtn

import (
	"errors"
	"fmt"
)

// Errors, for errors.Is.
var (
	ErrStoreFull      = errors.New("DTN store full")
	ErrLocked         = errors.New("the state database is held by another process (is gardend running? ask it with `gardend status`)")
	ErrClosed         = errors.New("DTN store closed")
	ErrCorrupt        = errors.New("stored value failed authentication (tampered, moved or damaged)")
	ErrInvalidEntry   = errors.New("invalid DTN entry")
	ErrWrongKey       = errors.New("the keystore cannot unwrap this database's data key (another identity?)")
	ErrReservedBucket = errors.New("bucket name is reserved for the DTN store")
)

// FullError says why an entry was refused for lack of space and at which
// level: moderate entries are refused earlier (at 90% of the quota) so that
// room remains for critical ones.
type FullError struct {
	Level  Level
	Reason string // "quota" or "disk"
}

func (e *FullError) Error() string {
	return fmt.Sprintf("DTN store full: %s entry refused (%s)", e.Level, e.Reason)
}

func (e *FullError) Unwrap() error { return ErrStoreFull }

// CorruptError names the value that failed authentication.
type CorruptError struct {
	Bucket string
	Key    []byte
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: bucket %s key %x", ErrCorrupt, e.Bucket, e.Key)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }
