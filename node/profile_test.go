package node

import (
	"testing"
	"time"

	"gardend/plan"
)

// TestLastCallFrom: the last call is the window's last max(guard,
// heartbeat interval), and LastCallFrom names its start while in a window.
func TestLastCallFrom(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	prof := ProfileFor(ProfileOrbital)
	w := plan.Window{Start: t0.Add(10 * time.Minute), End: t0.Add(20 * time.Minute)}
	p, err := plan.New([]plan.Window{w})
	if err != nil {
		t.Fatal(err)
	}
	c := Contact{Profile: prof, Plan: p}
	want := w.End.Add(-max(prof.Guard, prof.HeartbeatInterval))
	if from, ok := c.LastCallFrom(w.Start.Add(time.Minute)); !ok || !from.Equal(want) {
		t.Fatalf("LastCallFrom in the window = %v %v, want %v", from, ok, want)
	}
	if _, ok := c.LastCallFrom(t0); ok {
		t.Fatal("LastCallFrom outside a window")
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{want.Add(-time.Millisecond), false}, {want, true}, {w.End.Add(-time.Millisecond), true}, {w.End.Add(time.Second), false}} {
		if got := c.LastCall(tc.at); got != tc.want {
			t.Errorf("LastCall(%v) = %v, want %v", tc.at.Sub(w.End), got, tc.want)
		}
	}
	if _, ok := (Contact{Profile: ProfileFor(ProfileContinuous), Plan: p}).LastCallFrom(w.Start); ok {
		t.Fatal("a continuous profile has a last call")
	}
}
