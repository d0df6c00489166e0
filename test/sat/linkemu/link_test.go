package linkemu

import (
	"context"
	"io"
	"testing"
	"time"
)

// packetDev is an in-memory packet device: each Read returns one packet
// written to in, each Write hands one packet to out.
type packetDev struct{ in, out chan []byte }

func newPacketDev() *packetDev {
	return &packetDev{in: make(chan []byte, 8), out: make(chan []byte, 8)}
}

func (d *packetDev) Read(p []byte) (int, error) {
	pkt, ok := <-d.in
	if !ok {
		return 0, io.EOF
	}
	return copy(p, pkt), nil
}

func (d *packetDev) Write(p []byte) (int, error) {
	d.out <- append([]byte(nil), p...)
	return len(p), nil
}

// SetWatch sees each packet b→a delivered, in order, with its size and a
// time no earlier than it was sent, and nothing of a→b or of what is lost.
func TestWatchSeesWhatReachesA(t *testing.T) {
	ground, board := newPacketDev(), newPacketDev()
	l := NewLink(ground, board, Shape{}, Shape{}, 1)
	type seen struct {
		size int
		at   time.Time
	}
	watched := make(chan seen, 8)
	l.SetWatch(func(size int, at time.Time) { watched <- seen{size, at} })
	l.SetLose(func(pkt []byte, _ [][]byte) bool { return len(pkt) == 7 })
	l.SetUp(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)

	sent := time.Now()
	ground.in <- make([]byte, 1200) // a→b: not watched
	<-board.out
	for _, n := range []int{100, 7, 1500, 60} { // 7 is lost
		board.in <- make([]byte, n)
	}
	for _, want := range []int{100, 1500, 60} {
		select {
		case pkt := <-ground.out:
			if len(pkt) != want {
				t.Fatalf("delivered %d bytes, want %d", len(pkt), want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("the %d-byte packet never arrived", want)
		}
		var s seen
		select {
		case s = <-watched:
		case <-time.After(time.Minute):
			t.Fatalf("the %d-byte packet arrived unwatched", want)
		}
		if s.size != want || s.at.Before(sent) {
			t.Fatalf("watched %d bytes at %v after sending, want %d at or after", s.size, s.at.Sub(sent), want)
		}
	}
	select {
	case s := <-watched:
		t.Fatalf("watched %d bytes more", s.size)
	default:
	}
}
