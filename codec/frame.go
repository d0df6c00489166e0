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

// FrameReader reads length-prefixed frames from a stream. It buffers, so use
// one FrameReader for the whole life of a stream.
type FrameReader struct {
	r        *bufio.Reader
	maxFrame int
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

// ReadFrame returns the next frame body. It returns io.EOF only at a clean end
// of stream (between frames); a stream that ends inside a frame yields
// ErrTruncated. The length is checked against the limit before any allocation,
// so a hostile prefix costs nothing.
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
	body := make([]byte, n)
	if got, err := io.ReadFull(f.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, newError(ErrTruncated, -1, "frame body ended after %d of %d bytes", got, n)
		}
		return nil, err
	}
	return body, nil
}

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
