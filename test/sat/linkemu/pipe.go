// Package linkemu emulates a radio link in userspace: IP packets read from
// one TUN device are written to another after a per-direction rate limit
// (FIFO serialisation), a fixed one-way delay, Bernoulli loss and a queue
// limit; a switch (or a contact plan) blackholes the link between passes.
// The kernel in this environment has no netem, so this is how the flight
// test bench gets a 64 kbit/s, 300 ms, 1 % loss link with real kernel TCP.
package linkemu

import (
	"math/rand/v2"
	"time"
)

// Shape is one direction of the link.
type Shape struct {
	RateBps    int           // bits per second on the air; 0: unlimited
	Delay      time.Duration // one-way propagation delay
	Loss       float64       // probability a packet is lost on the air, 0..1
	QueueBytes int           // bytes waiting to be sent before tail drop; 0: 64 KiB
}

// Verdict is what happens to one packet.
type Verdict int

const (
	Delivered Verdict = iota
	LostOnAir
	QueueFull
	LinkDown
)

// Pipe schedules one direction. It is pure computation on times given by
// the caller, so it can be tested exactly; it is not safe for concurrent use.
type Pipe struct {
	shape     Shape
	rng       *rand.Rand
	busyUntil time.Time
	inflight  []departure // packets serialising or waiting, in order
	queued    int         // their bytes
}

type departure struct {
	at   time.Time
	size int
}

// NewPipe returns a pipe with a seeded loss generator (reproducible runs).
func NewPipe(s Shape, seed uint64) *Pipe {
	if s.QueueBytes == 0 {
		s.QueueBytes = 64 << 10
	}
	return &Pipe{shape: s, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Admit takes a packet of size bytes arriving at now and says when it
// reaches the far side, or why it does not. A lost packet still takes its
// time on the air.
func (p *Pipe) Admit(now time.Time, size int) (at time.Time, v Verdict) {
	for len(p.inflight) > 0 && !p.inflight[0].at.After(now) {
		p.queued -= p.inflight[0].size
		p.inflight = p.inflight[1:]
	}
	if p.queued+size > p.shape.QueueBytes {
		return time.Time{}, QueueFull
	}
	start := now
	if p.busyUntil.After(start) {
		start = p.busyUntil
	}
	var tx time.Duration
	if p.shape.RateBps > 0 {
		tx = time.Duration(int64(size) * 8 * int64(time.Second) / int64(p.shape.RateBps))
	}
	done := start.Add(tx)
	p.busyUntil = done
	p.inflight = append(p.inflight, departure{at: done, size: size})
	p.queued += size
	if p.shape.Loss > 0 && p.rng.Float64() < p.shape.Loss {
		return time.Time{}, LostOnAir
	}
	return done.Add(p.shape.Delay), Delivered
}

// Reset forgets the queue (the link went down: what was queued is gone).
func (p *Pipe) Reset() {
	p.inflight, p.queued, p.busyUntil = nil, 0, time.Time{}
}
