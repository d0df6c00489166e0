package codec

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// budget records what a FrameReader reserves and refuses past a cap.
type budget struct {
	held, peak, cap int
}

func (b *budget) ReserveMemory(size int, _ uint8) error {
	if b.held+size > b.cap {
		return errors.New("over budget")
	}
	b.held += size
	b.peak = max(b.peak, b.held)
	return nil
}

func (b *budget) ReleaseMemory(size int) { b.held -= size }

// A frame announced at the limit whose bytes stop early costs what arrived
// (rounded up to the buffer's doubling), not what was announced, and gives
// it back when the frame is abandoned.
func TestFrameBufferGrowsWithArrivingBytes(t *testing.T) {
	partial := AppendFrame(nil, bytes.Repeat([]byte{1}, DefaultMaxFrame))[:100]
	b := &budget{cap: 1 << 20}
	r := NewFrameReader(bytes.NewReader(partial), DefaultMaxFrame)
	r.SetBudget(b)
	if _, err := r.ReadFrame(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want truncated", err)
	}
	if b.peak != frameChunk {
		t.Fatalf("reserved %d bytes for 100 that arrived, want %d", b.peak, frameChunk)
	}
	if b.held != 0 {
		t.Fatalf("%d bytes still reserved after the frame was abandoned", b.held)
	}

	// A whole frame: reserved while it arrives, released once returned.
	body := bytes.Repeat([]byte{2}, 20000)
	r = NewFrameReader(bytes.NewReader(AppendFrame(nil, body)), DefaultMaxFrame)
	r.SetBudget(b)
	got, err := r.ReadFrame()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	if b.peak < len(body) || b.peak > 2*len(body) || b.held != 0 {
		t.Fatalf("peak %d held %d for a %d-byte frame", b.peak, b.held, len(body))
	}
}

// A budget that says no ends the frame with ErrLimit and keeps nothing.
func TestFrameRefusedByBudget(t *testing.T) {
	b := &budget{cap: 8 << 10}
	r := NewFrameReader(bytes.NewReader(AppendFrame(nil, bytes.Repeat([]byte{3}, 30000))), DefaultMaxFrame)
	r.SetBudget(b)
	if _, err := r.ReadFrame(); !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit", err)
	}
	if b.held != 0 {
		t.Fatalf("%d bytes still reserved", b.held)
	}
}

// Wait returns once a byte is there, and io.EOF on a clean end.
func TestFrameWait(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewFrameReader(pr, 0)
	done := make(chan error, 1)
	go func() { done <- r.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned before any byte: %v", err)
	default:
	}
	go pw.Write(AppendFrame(nil, []byte{0xf6}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := r.ReadFrame(); err != nil || len(b) != 1 {
		t.Fatalf("%x %v", b, err)
	}
	pw.Close()
	if err := r.Wait(); !errors.Is(err, io.EOF) {
		t.Fatalf("Wait at the end: %v", err)
	}
}

func TestNewReaderMaxTakesTheSmallerLimit(t *testing.T) {
	c := newTestCodec(t, DefaultLimits())
	if got := c.NewReaderMax(nil, 1024).MaxFrame(); got != 1024 {
		t.Fatalf("got %d", got)
	}
	if got := c.NewReaderMax(nil, 1<<30).MaxFrame(); got != c.Limits().MaxFrame {
		t.Fatalf("got %d", got)
	}
}
