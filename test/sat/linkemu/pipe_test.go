package linkemu

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func TestRateAndDelay(t *testing.T) {
	p := NewPipe(Shape{RateBps: 64000, Delay: 300 * time.Millisecond, QueueBytes: 1 << 20}, 1)
	// 100 back-to-back 1000-byte packets: 125 ms each on the air.
	var last time.Time
	for i := range 100 {
		at, v := p.Admit(t0, 1000)
		if v != Delivered {
			t.Fatalf("packet %d: %v", i, v)
		}
		want := t0.Add(time.Duration(i+1)*125*time.Millisecond + 300*time.Millisecond)
		if !at.Equal(want) {
			t.Fatalf("packet %d arrives %v, want %v", i, at.Sub(t0), want.Sub(t0))
		}
		last = at
	}
	// Throughput over the burst is the link rate.
	rate := 100 * 1000 * 8 / last.Add(-300*time.Millisecond).Sub(t0).Seconds()
	if math.Abs(rate-64000) > 1 {
		t.Fatalf("rate %.0f bit/s", rate)
	}
	// An idle link adds only the serialisation and the delay.
	at, _ := p.Admit(t0.Add(time.Hour), 100)
	if got := at.Sub(t0.Add(time.Hour)); got != 300*time.Millisecond+12500*time.Microsecond {
		t.Fatalf("idle packet took %v", got)
	}
}

func TestLossRate(t *testing.T) {
	p := NewPipe(Shape{RateBps: 0, Loss: 0.01}, 7)
	lost := 0
	const n = 200_000
	for range n {
		if _, v := p.Admit(t0, 100); v == LostOnAir {
			lost++
		}
	}
	// 1 % ± 5 standard deviations (σ ≈ 0.022 % at n = 200k).
	if r := float64(lost) / n; math.Abs(r-0.01) > 0.0011 {
		t.Fatalf("loss %.4f, want 0.01", r)
	}
}

func TestQueueLimitDropsTail(t *testing.T) {
	p := NewPipe(Shape{RateBps: 8000, QueueBytes: 3000}, 1) // 1 byte per ms
	for i := range 3 {
		if _, v := p.Admit(t0, 1000); v != Delivered {
			t.Fatalf("packet %d: %v", i, v)
		}
	}
	if _, v := p.Admit(t0, 1000); v != QueueFull {
		t.Fatalf("fourth packet: %v, want tail drop", v)
	}
	// Once the first packet has left, there is room again.
	if _, v := p.Admit(t0.Add(1001*time.Millisecond), 1000); v != Delivered {
		t.Fatalf("after a departure: %v", v)
	}
}
