package linkemu

import (
	"container/heap"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"gardend/plan"
)

// Stats counts what one direction carried.
type Stats struct {
	Packets, Bytes, Lost, QueueDrops, DownDrops atomic.Uint64
}

// Link joins two packet devices (TUN files) through two pipes.
type Link struct {
	a, b   io.ReadWriter
	mu     sync.Mutex // guards the pipes
	ab, ba *Pipe
	up     atomic.Bool
	AtoB   Stats
	BtoA   Stats
	// OnChange, if set, is told when the link goes up or down.
	OnChange func(up bool, at time.Time)
	lose     atomic.Pointer[func(pkt []byte, behind [][]byte) bool]
	watch    atomic.Pointer[func(size int, at time.Time)]
}

// SetWatch tells watch about each packet of b→a delivered to a: its size
// and when it arrived. A bench times a drain on the air with it. nil: none.
func (l *Link) SetWatch(watch func(size int, at time.Time)) {
	if watch == nil {
		l.watch.Store(nil)
		return
	}
	l.watch.Store(&watch)
}

// SetLose asks lose about each packet of b→a as it reaches a, with the
// packets on the air or queued behind it; true loses it. A test loses a
// chosen packet with it (the last of a burst, say). nil: none.
func (l *Link) SetLose(lose func(pkt []byte, behind [][]byte) bool) {
	if lose == nil {
		l.lose.Store(nil)
		return
	}
	l.lose.Store(&lose)
}

// NewLink returns a link, initially down, shaping a→b with ab and b→a with
// ba.
func NewLink(a, b io.ReadWriter, ab, ba Shape, seed uint64) *Link {
	return &Link{a: a, b: b, ab: NewPipe(ab, seed), ba: NewPipe(ba, seed+1)}
}

// SetUp opens or closes the link. Closing drops what is queued, as a
// satellite going below the horizon does.
func (l *Link) SetUp(up bool) {
	if l.up.Swap(up) == up {
		return
	}
	if !up {
		l.mu.Lock()
		l.ab.Reset()
		l.ba.Reset()
		l.mu.Unlock()
	}
	if l.OnChange != nil {
		l.OnChange(up, time.Now())
	}
}

// Up reports whether the link is open.
func (l *Link) Up() bool { return l.up.Load() }

// Run forwards packets both ways until ctx ends.
func (l *Link) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range []struct {
		src, dst io.ReadWriter
		pipe     *Pipe
		st       *Stats
		chosen   bool // SetLose and SetWatch apply
	}{{l.a, l.b, l.ab, &l.AtoB, false}, {l.b, l.a, l.ba, &l.BtoA, true}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.forward(ctx, d.src, d.dst, d.pipe, d.st, d.chosen)
		}()
	}
	wg.Wait()
}

// FollowPlan opens the link during the plan's windows and closes it
// outside them, until ctx ends.
func (l *Link) FollowPlan(ctx context.Context, p *plan.Plan) {
	for {
		now := time.Now()
		_, in := p.Current(now, 0)
		l.SetUp(in)
		var next time.Time
		if w, ok := p.Next(now); ok {
			next = w.End
			if w.Start.After(now) {
				next = w.Start
			}
		} else {
			return
		}
		t := time.NewTimer(time.Until(next) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

type scheduled struct {
	at  time.Time
	pkt []byte
}

type schedule []scheduled

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].at.Before(s[j].at) }
func (s schedule) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)        { *s = append(*s, x.(scheduled)) }
func (s *schedule) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

func (l *Link) forward(ctx context.Context, src, dst io.ReadWriter, p *Pipe, st *Stats, chosen bool) {
	var (
		mu   sync.Mutex
		q    schedule
		wake = make(chan struct{}, 1)
	)
	go func() { // writer: delivers packets at their time
		for {
			mu.Lock()
			var wait time.Duration = time.Hour
			for q.Len() > 0 {
				if d := time.Until(q[0].at); d > 0 {
					wait = d
					break
				}
				x := heap.Pop(&q).(scheduled)
				var lose func([]byte, [][]byte) bool
				var behind [][]byte
				if f := l.lose.Load(); chosen && f != nil {
					lose = *f
					for _, y := range q {
						behind = append(behind, y.pkt)
					}
				}
				mu.Unlock()
				if lose != nil && lose(x.pkt, behind) {
					st.Lost.Add(1)
				} else if l.up.Load() { // a packet in flight when the link drops is lost
					dst.Write(x.pkt)
					st.Packets.Add(1)
					st.Bytes.Add(uint64(len(x.pkt)))
					if f := l.watch.Load(); chosen && f != nil {
						(*f)(len(x.pkt), time.Now())
					}
				} else {
					st.DownDrops.Add(1)
				}
				mu.Lock()
			}
			mu.Unlock()
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-wake:
				t.Stop()
			case <-t.C:
			}
		}
	}()
	buf := make([]byte, 65536)
	for ctx.Err() == nil {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if !l.up.Load() {
			st.DownDrops.Add(1)
			continue
		}
		l.mu.Lock()
		at, v := p.Admit(time.Now(), n)
		l.mu.Unlock()
		switch v {
		case LostOnAir:
			st.Lost.Add(1)
			continue
		case QueueFull:
			st.QueueDrops.Add(1)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		mu.Lock()
		heap.Push(&q, scheduled{at: at, pkt: pkt})
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}
