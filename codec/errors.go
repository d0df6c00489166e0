package codec

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Sentinel kinds of decode failure. Every error returned by this package for bad
// input wraps exactly one of them, so callers can test with errors.Is and count
// rejections per kind.
var (
	ErrFrameTooLarge = errors.New("frame too large")
	ErrTruncated     = errors.New("truncated")
	ErrMalformed     = errors.New("malformed CBOR")
	ErrLimit         = errors.New("decode limit exceeded")
	ErrUnknownType   = errors.New("unknown message type")
	ErrWrongProtocol = errors.New("message type not allowed on this protocol")
)

// kinds lists the sentinels in a fixed order; the index is the counter slot.
var kinds = [...]error{ErrFrameTooLarge, ErrTruncated, ErrMalformed, ErrLimit, ErrUnknownType, ErrWrongProtocol}

// reasons are metric-friendly labels, index-aligned with kinds.
var reasons = [...]string{"frame_too_large", "truncated", "malformed", "limit", "unknown_type", "wrong_protocol"}

// Error is a decode failure: its Kind says what class of problem, Detail says
// what exactly and Offset where (byte offset into the frame body, -1 if unknown).
type Error struct {
	Kind   error
	Detail string
	Offset int
}

func (e *Error) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("codec: %v: %s (at byte %d)", e.Kind, e.Detail, e.Offset)
	}
	return fmt.Sprintf("codec: %v: %s", e.Kind, e.Detail)
}

func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, offset int, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...), Offset: offset}
}

// Reason returns a short label for the kind of err ("frame_too_large", …), or
// "other" when err is not a codec decode error. Meant for metric labels.
func Reason(err error) string {
	for i, k := range kinds {
		if errors.Is(err, k) {
			return reasons[i]
		}
	}
	return "other"
}

// RejectCounts counts decode failures per kind. The zero value is ready; it is
// safe for concurrent use (atomic types keep 64-bit alignment on 32-bit ARM).
type RejectCounts struct {
	n [len(kinds)]atomic.Uint64
}

// Note records err if it is a codec decode error and returns it unchanged.
func (c *RejectCounts) Note(err error) error {
	if err == nil {
		return nil
	}
	for i, k := range kinds {
		if errors.Is(err, k) {
			c.n[i].Add(1)
			break
		}
	}
	return err
}

// Snapshot returns the counts by reason label.
func (c *RejectCounts) Snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(kinds))
	for i := range kinds {
		out[reasons[i]] = c.n[i].Load()
	}
	return out
}
