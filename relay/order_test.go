package relay

import (
	"context"
	"testing"
	"time"

	"gardend/dtn"
	"gardend/node"
)

func (x *twoStations) change(t *testing.T, m *member, op dtn.Op, id, body string) {
	t.Helper()
	if err := m.node.PutResources(context.Background(), []node.ResourceChange{{Op: op, ID: id, Owner: x.n.id(), Body: []byte(body)}}); err != nil {
		t.Fatal(err)
	}
}

// missSvalbard makes r = v0 on the nano, wrapped for svalbard, whose radio
// never locks, then a second change of r between the windows: at kiruna
// the envelope held for svalbard must go ahead of it.
func (x *twoStations) missSvalbard(t *testing.T, op dtn.Op, body string) {
	t.Helper()
	x.change(t, x.n, dtn.OpCreate, "r", "v0")
	x.n.Host.Gater.Block(x.s1.id(), "no lock")
	x.f.clock.Set(x.svalbard.Start.Add(2 * time.Second))
	eventually(t, "v0 wrapped for svalbard", func() bool {
		return x.n.Store.Len(string(x.s1.id())) == 1 && x.n.Store.Len(string(x.master.id())) == 0
	})
	x.f.clock.Set(x.svalbard.End.Add(time.Minute)) // no station in view
	x.change(t, x.n, op, "r", body)
	if x.n.Store.Len(string(x.master.id())) != 1 {
		t.Fatal("the second change is not queued for the master")
	}
	x.f.clock.Set(x.kiruna.Start.Add(2 * time.Second))
	eventually(t, "the nano's and kiruna's stores empty", func() bool { return x.n.Store.Len("") == 0 && x.s2.Store.Len("") == 0 })
	eventually(t, "the master applied both", func() bool { return metric(x.master, "relayed_applied") == 2 })
}

// An update made after an older one was wrapped for a station that missed
// its pass reaches the master after it, through the next station: the
// master ends with the newer body.
func TestAnEnvelopeHeldForAMissedStationGoesAheadOfNewerChanges(t *testing.T) {
	x := newTwoStations(t)
	x.missSvalbard(t, dtn.OpUpdate, "v1")
	if got := catalogue(t, x.master)["r"]; got != "v1" {
		t.Fatalf("the master holds r = %q, the nano's latest is v1", got)
	}
}

// The same with a delete: the master does not bring the resource back.
func TestADeleteAfterAMissedStationStaysDeleted(t *testing.T) {
	x := newTwoStations(t)
	x.missSvalbard(t, dtn.OpDelete, "")
	if got, ok := catalogue(t, x.master)["r"]; ok {
		t.Fatalf("the nano deleted r, the master still holds it (%q)", got)
	}
}
