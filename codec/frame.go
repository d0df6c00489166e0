package codec

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// DefaultMaxFrame is the largest frame body accepted unless configured
// otherwise: 64 KiB, about eight seconds of a 64 kbit/s pass.
const DefaultMaxFrame = 64 << 10

// maxVarintLen bounds the length prefix: a uint64 needs at most 10 bytes.
const maxVarintLen = binary.MaxVarintLen64

// AppendFrame appends body to dst behind its uvarint length prefix.
func AppendFrame(dst, body []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// WriteFrame writes body as one frame with a single Write call, so a frame is
// never split across transport writes by this layer. It refuses bodies larger
// than maxFrame, the same limit the receiving side enforces.
func WriteFrame(w io.Writer, body []byte, maxFrame int) error {
	if len(body) == 0 {
		return newError(ErrMalformed, -1, "empty frame body")
	}
	if len(body) > maxFrame {
		return newError(ErrFrameTooLarge, -1, "body of %d bytes exceeds the %d-byte limit", len(body), maxFrame)
	}
	buf := make([]byte, 0, maxVarintLen+len(body))
	_, err := w.Write(AppendFrame(buf, body))
	return err
}

// Budget is where a FrameReader takes the memory for a frame's body while
// the frame arrives: a libp2p stream's resource scope (network.StreamScope)
// fits. A refusal ends the frame with ErrLimit.
type Budget interface {
	ReserveMemory(size int, prio uint8) error
	ReleaseMemory(size int)
}

// frameChunk is the first allocation for a frame body and the smallest
// growth step: most frames fit in it.
const frameChunk = 4 << 10

// FrameReader reads length-prefixed frames from a stream. It buffers, so use
// one FrameReader for the whole life of a stream.
type FrameReader struct {
	r        *bufio.Reader
	maxFrame int
	budget   Budget
}

// NewFrameReader returns a reader that refuses frames larger than maxFrame
// bytes (DefaultMaxFrame if maxFrame <= 0).
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 4096)
	}
	return &FrameReader{r: br, maxFrame: maxFrame}
}

// SetBudget makes the reader reserve a frame body's memory from b as the
// body grows, and give it back once the frame is whole or abandoned: a peer
// that opens many streams and leaves frames half sent holds no more memory
// than the budget allows.
func (f *FrameReader) SetBudget(b Budget) { f.budget = b }

// MaxFrame is the largest frame body this reader accepts.
func (f *FrameReader) MaxFrame() int { return f.maxFrame }

// Wait blocks until at least one byte of the next frame has arrived (or the
// stream ends: io.EOF, or the read deadline passes). A caller that waits a
// long time for a peer to speak can then give the frame itself a short
// deadline, measured from its first byte.
func (f *FrameReader) Wait() error {
	_, err := f.r.Peek(1)
	return err
}

// ReadFrame returns the next frame body. It returns io.EOF only at a clean end
// of stream (between frames); a stream that ends inside a frame yields
// ErrTruncated. The length is checked against the limit before any allocation,
// so a hostile prefix costs nothing, and the body's buffer grows with the
// bytes that actually arrive, not with the announced length.
func (f *FrameReader) ReadFrame() ([]byte, error) {
	n, err := f.readLength()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, newError(ErrMalformed, -1, "zero-length frame")
	}
	if n > uint64(f.maxFrame) {
		return nil, newError(ErrFrameTooLarge, -1, "announced %d bytes, limit is %d", n, f.maxFrame)
	}
	return f.readBody(int(n))
}

// readBody reads an n-byte body into a buffer that starts small and doubles
// as bytes arrive, each growth reserved from the budget first.
func (f *FrameReader) readBody(n int) ([]byte, error) {
	reserved := 0
	defer func() {
		if reserved > 0 {
			f.budget.ReleaseMemory(reserved)
		}
	}()
	var body []byte
	for len(body) < n {
		if len(body) == cap(body) {
			size := min(n, max(frameChunk, 2*cap(body)))
			if f.budget != nil {
				// Only the growth is reserved: the old buffer is garbage once copied.
				if err := f.budget.ReserveMemory(size-cap(body), reservePriority); err != nil {
					return nil, newError(ErrLimit, -1, "no memory for a %d-byte frame: %v", n, err)
				}
				reserved += size - cap(body)
			}
			grown := make([]byte, len(body), size)
			copy(grown, body)
			body = grown
		}
		got, err := io.ReadFull(f.r, body[len(body):cap(body)])
		body = body[:len(body)+got]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, newError(ErrTruncated, -1, "frame body ended after %d of %d bytes", len(body), n)
			}
			return nil, err
		}
	}
	return body, nil
}

// reservePriority is libp2p's "always reserve while under the limit"
// priority (network.ReservationPriorityAlways), spelt out to keep this
// package free of libp2p.
const reservePriority = 255

// FrameBuffered reports whether the next ReadFrame can return without
// waiting for the network: a whole frame (or a prefix it will refuse at
// once) is already buffered. Bytes of a frame whose rest is still on the
// way do not count: on a slow link the rest can be seconds behind.
func (f *FrameReader) FrameBuffered() bool {
	n := f.r.Buffered()
	if n == 0 {
		return false
	}
	p, _ := f.r.Peek(min(n, maxVarintLen)) // buffered: Peek does not read
	length, k := binary.Uvarint(p)
	switch {
	case k == 0:
		return false // the prefix itself is still on the way
	case k < 0:
		return true // overlong: ReadFrame refuses it at once
	}
	return length == 0 || length > uint64(f.maxFrame) || uint64(n-k) >= length
}

// readLength decodes the uvarint prefix by hand to tell a clean EOF from a
// truncated prefix and to reject overlong encodings.
func (f *FrameReader) readLength() (uint64, error) {
	var x uint64
	var shift uint
	for i := 0; i < maxVarintLen; i++ {
		b, err := f.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if i == 0 {
					return 0, io.EOF
				}
				return 0, newError(ErrTruncated, -1, "length prefix ended after %d bytes", i)
			}
			return 0, err
		}
		if b < 0x80 {
			if i == maxVarintLen-1 && b > 1 {
				return 0, newError(ErrMalformed, -1, "length prefix overflows 64 bits")
			}
			return x | uint64(b)<<shift, nil
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, newError(ErrMalformed, -1, "length prefix longer than %d bytes", maxVarintLen)
}
