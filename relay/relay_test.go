package relay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/dtn"
	"gardend/internal/testnet"
	"gardend/node"
	"gardend/origin"
	"gardend/plan"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// twoStations is a master without an antenna of its own, two stations and
// one nano whose windows are over svalbard (1–6 min) then kiruna (20–25).
type twoStations struct {
	f                 *fleet
	master, s1, s2, n *member
	svalbard, kiruna  plan.Window
}

func newTwoStations(t *testing.T) *twoStations { return newTwoStationsMasterBegin(t, nil) }

// newTwoStationsMasterBegin is newTwoStations with the master's loops held
// until begin closes (node.Options.Begin).
func newTwoStationsMasterBegin(t *testing.T, begin <-chan struct{}) *twoStations {
	f := newFleet(t, t0)
	x := &twoStations{f: f,
		master:   f.member("master", node.RoleMaster, ""),
		s1:       f.member("svalbard", node.RoleStation, ""),
		s2:       f.member("kiruna", node.RoleStation, ""),
		n:        f.member("nano", node.RoleNano, ""),
		svalbard: plan.Window{Start: t0.Add(time.Minute), End: t0.Add(6 * time.Minute), Station: "svalbard"},
		kiruna:   plan.Window{Start: t0.Add(20 * time.Minute), End: t0.Add(25 * time.Minute), Station: "kiruna"},
	}
	stations := map[string]peer.ID{"svalbard": x.s1.id(), "kiruna": x.s2.id()}
	all := contacts(t, x.svalbard, x.kiruna)
	nanoID := x.n.id()
	never := new(plan.Plan)

	f.start(x.master, node.Options{Roles: node.RoleMaster, Nanos: []peer.AddrInfo{x.n.info()},
		NanoContacts: map[peer.ID]node.Contact{nanoID: {Profile: orbital(), Plan: never}},
		Stations:     []peer.AddrInfo{x.s1.info(), x.s2.info()}, Begin: begin},
		Options{Stations: stations, Contacts: map[peer.ID]*plan.Contacts{nanoID: all}})
	for _, s := range []*member{x.s1, x.s2} {
		f.start(s, node.Options{Roles: node.RoleStation, Master: x.master.info(), Nanos: []peer.AddrInfo{x.n.info()},
			NanoContacts: map[peer.ID]node.Contact{nanoID: {Profile: orbital(), Plan: all.StationPlan(s.name)}}},
			Options{Stations: stations})
	}
	f.start(x.n, node.Options{Roles: node.RoleNano, Master: x.master.info(), Contact: node.Contact{Profile: orbital(), Plan: all.Union()},
		Stations:  []peer.AddrInfo{x.s1.info(), x.s2.info()},
		PeerPlans: map[peer.ID]*plan.Plan{x.s1.id(): all.StationPlan("svalbard"), x.s2.id(): all.StationPlan("kiruna"), x.master.id(): never}},
		Options{Stations: stations, Contacts: map[peer.ID]*plan.Contacts{nanoID: all}})
	return x
}

func (x *twoStations) put(t *testing.T, m *member, want map[string]string) {
	t.Helper()
	var cs []node.ResourceChange
	for id, body := range want {
		cs = append(cs, node.ResourceChange{Op: dtn.OpCreate, ID: id, Owner: x.n.id(), Body: []byte(body)})
	}
	if err := m.node.PutResources(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
}

func expectCatalogue(t *testing.T, m *member, want map[string]string) {
	t.Helper()
	eventually(t, m.name+" holds every resource", func() bool {
		got := catalogue(t, m)
		for id, body := range want {
			if got[id] != body {
				return false
			}
		}
		return true
	})
}

// TestThroughOneStation: work made on both sides in a gap crosses the
// station of the next window, both ways, each hop taking custody, and
// nothing stays anywhere.
func TestThroughOneStation(t *testing.T) {
	x := newTwoStations(t)
	up, down := bodies("board", 5), bodies("ground", 5)
	x.put(t, x.n, up)
	x.put(t, x.master, down)
	// Before the window: the master hands the nano's entries to svalbard,
	// whose window comes first, and svalbard holds them; the nano keeps
	// its own (no station in view).
	eventually(t, "svalbard takes custody of the downlink", func() bool {
		return x.s1.Store.Len(string(x.n.id())) == len(down) && x.master.Store.Len("") == 0
	})
	if got := x.n.Store.Len(string(x.master.id())); got != len(up) {
		t.Fatalf("the nano holds %d entries for its master before the pass, want %d", got, len(up))
	}
	if x.s2.Store.Len("") != 0 {
		t.Fatal("kiruna was handed entries for a later window")
	}
	expectHanded(t, x, "svalbard", x.svalbard.End, len(down))
	x.f.clock.Set(x.svalbard.Start.Add(2 * time.Second))
	expectCatalogue(t, x.master, up)
	expectCatalogue(t, x.n, down)
	eventually(t, "every store empty", func() bool {
		return x.n.Store.Len("") == 0 && x.s1.Store.Len("") == 0 && x.master.Store.Len("") == 0
	})
	if got := metric(x.master, "relayed_applied"); got != uint64(len(up)) {
		t.Errorf("master applied %d relayed entries, want %d", got, len(up))
	}
	if got := metric(x.n, "relayed_applied"); got != uint64(len(down)) {
		t.Errorf("nano applied %d relayed entries, want %d", got, len(down))
	}
	for _, m := range []*member{x.master, x.n} {
		if d := metric(m, "deliveries_duplicate"); d != 0 {
			t.Errorf("%s saw %d duplicates", m.name, d)
		}
	}
	c := x.s1.relay.Counts()
	if c["relay_custody_uplink"] != uint64(len(up)) || c["relay_custody_downlink"] != uint64(len(down)) {
		t.Errorf("svalbard's custody counts: %v", c)
	}
	// The station's receipts tell the master every entry was delivered.
	eventually(t, "the master's ledger empty", func() bool {
		return x.master.relay.Counts()["relay_delivered"] == uint64(len(down)) && x.s1.Store.Len("") == 0
	})
	expectHanded(t, x, "", time.Time{}, 0)
}

// TestRoutingWaitsForTheNodesBegin: the relay's routing is one of the
// loops a daemon starts once READY is sent: a held master makes no
// envelope for the station of the nano's next window until its node's
// Begin closes, then hands its entries on.
func TestRoutingWaitsForTheNodesBegin(t *testing.T) {
	begin := make(chan struct{})
	x := newTwoStationsMasterBegin(t, begin)
	down := bodies("ground", 3)
	x.put(t, x.master, down)
	time.Sleep(200 * time.Millisecond)
	if got, held := x.master.Store.Len(string(x.s1.id())), x.master.Store.Len(string(x.n.id())); got != 0 || held != len(down) {
		t.Fatalf("before Begin: %d envelopes for svalbard, %d entries for the nano (want 0, %d)", got, held, len(down))
	}
	close(begin)
	eventually(t, "svalbard takes custody once the master begins", func() bool {
		return x.s1.Store.Len(string(x.n.id())) == len(down) && x.master.Store.Len("") == 0
	})
}

// TestANearlyFullNanoHandsOnToAStation: a nano whose moderate entries
// fill nearly all the 90 % of its quota they may use still hands them to
// the station in view (each envelope is larger than what it carries), and
// they reach the master.
func TestANearlyFullNanoHandsOnToAStation(t *testing.T) {
	x := newTwoStations(t)
	up := map[string]string{}
	for id, body := range bodies("board", 12) {
		up[id] = body + strings.Repeat(".", 500)
	}
	x.put(t, x.n, up)
	eventually(t, "the nano queues its work", func() bool { return x.n.Store.Len(string(x.master.id())) == len(up) })
	st, err := x.n.Store.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var held int64
	for _, q := range st.Queues {
		held += q.Bytes
	}
	// 90 % of the quota is what it holds and 100 bytes: less than one
	// envelope adds (its signature alone is 64). The tenth a move may use
	// beyond the quota holds a few envelopes, not all twelve: the rest
	// move as the station takes the first ones (relay_move_full).
	x.n.Store.SetQuota((held + 100) * 10 / 9)
	x.f.clock.Set(x.svalbard.Start.Add(2 * time.Second))
	expectCatalogue(t, x.master, up)
	// Acknowledged, so counted: the master counts an entry after the commit
	// that shows it, before it acknowledges it.
	eventually(t, "the stations empty", func() bool { return x.s1.Store.Len("") == 0 && x.s2.Store.Len("") == 0 })
	if got := metric(x.master, "relayed_applied"); got != uint64(len(up)) {
		t.Errorf("master applied %d relayed entries, want %d", got, len(up))
	}
	if c := x.n.relay.Counts(); c["relay_move_full"] == 0 || c["relay_moved"] != uint64(len(up)) {
		t.Errorf("the nano's relay counts %v: want every entry moved, not all at once", c)
	}
}

// expectHanded checks the master's ledger: n entries for the nano at
// station for the window ending at by (n 0: nothing handed anywhere).
func expectHanded(t *testing.T, x *twoStations, station string, by time.Time, n int) {
	t.Helper()
	rep, err := x.master.relay.Status()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		if len(rep.Handed) != 0 {
			t.Fatalf("the master's ledger still shows %+v", rep.Handed)
		}
		return
	}
	want := Handed{Nano: x.n.id().String(), Station: station, DeliverBy: by.UTC().Format(time.RFC3339), Entries: n}
	if len(rep.Handed) != 1 || rep.Handed[0] != want {
		t.Fatalf("the master's ledger shows %+v, want %+v", rep.Handed, want)
	}
}

// TestMissedWindowReroutes: the nano never reaches svalbard in its window;
// svalbard gives the entries back, the master hands them to kiruna, and the
// nano applies each once in kiruna's window.
func TestMissedWindowReroutes(t *testing.T) {
	x := newTwoStations(t)
	down := bodies("ground", 5)
	x.put(t, x.master, down)
	// Custody is taken when svalbard holds them and the master, having
	// heard so, has let go of its copies: a copy still queued when the
	// window passes is reclaimed and routed again, and kiruna would hold
	// it twice (applied once at the nano, but not what this test counts).
	eventually(t, "svalbard takes custody", func() bool {
		return x.s1.Store.Len(string(x.n.id())) == len(down) && x.master.Store.Len("") == 0
	})
	// The pass over svalbard is lost (the radio never locks).
	x.n.Host.Gater.Block(x.s1.id(), "no lock")
	x.f.clock.Set(x.svalbard.End.Add(time.Minute))
	eventually(t, "kiruna holds what svalbard gave back", func() bool {
		return x.s2.Store.Len(string(x.n.id())) == len(down) && x.s1.Store.Len("") == 0 && x.master.Store.Len("") == 0
	})
	if got := x.s1.relay.Counts()["relay_given_back"]; got != uint64(len(down)) {
		t.Errorf("svalbard gave back %d, want %d", got, len(down))
	}
	if got := x.master.relay.Counts()["relay_returned"]; got != uint64(len(down)) {
		t.Errorf("the master took back %d, want %d", got, len(down))
	}
	expectHanded(t, x, "kiruna", x.kiruna.End, len(down))
	x.f.clock.Set(x.kiruna.Start.Add(2 * time.Second))
	expectCatalogue(t, x.n, down)
	eventually(t, "receipts", func() bool { return x.master.relay.Counts()["relay_delivered"] == uint64(len(down)) })
	expectHanded(t, x, "", time.Time{}, 0)
	eventually(t, "kiruna empty", func() bool { return x.s2.Store.Len("") == 0 })
	if got := metric(x.n, "relayed_applied"); got != uint64(len(down)) {
		t.Errorf("nano applied %d, want %d", got, len(down))
	}
}

// TestAuthoritySurvivesRelay: what a station alters, forges or replays,
// and what a stranger hands over, is refused and counted; nothing applied.
func TestAuthoritySurvivesRelay(t *testing.T) {
	x := newTwoStations(t)
	c := x.f.codec
	mut, err := c.Marshal(&node.Mutation{Resource: "r1", Op: uint8(dtn.OpCreate), Body: []byte("from the master")})
	if err != nil {
		t.Fatal(err)
	}
	// A genuine envelope from the master to the nano.
	protocol := node.ProtoResource
	sign := func(m *member, from peer.ID, payload []byte) []byte {
		env := &Envelope{Origin: []byte(from), Dest: []byte(x.n.id()), ID: 77, Protocol: protocol,
			Op: uint8(dtn.OpCreate), Resource: "r1", Level: uint8(dtn.Critical), Payload: payload}
		atts, err := origin.SignEntries(m.KS, m.KS.PublicKey(), []origin.Entry{env.signed(from, x.n.id())})
		if err != nil {
			t.Fatal(err)
		}
		env.Att = atts[0]
		b, err := c.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	genuine := sign(x.master, x.master.id(), mut)
	apply := func(body []byte, from peer.ID) error {
		w, err := x.n.relay.prepare(node.Delivery{From: from, ID: 1, Body: body})
		if err != nil {
			return err
		}
		if err := x.n.Store.Update(context.Background(), w.Apply); err != nil {
			t.Fatal(err)
		}
		w.Applied()
		return nil
	}
	var refusal *node.Refusal
	// Altered by the station: one byte of the payload.
	env, _, _, err := Decode(c, genuine)
	if err != nil {
		t.Fatal(err)
	}
	env.Payload = append([]byte(nil), env.Payload...)
	env.Payload[len(env.Payload)-1] ^= 1
	altered, _ := c.Marshal(env)
	if err := apply(altered, x.s1.id()); !errors.As(err, &refusal) {
		t.Fatalf("an altered entry was not refused: %v", err)
	}
	// Forged: the station signs a "master" entry with its own key.
	forged := sign(x.s1, x.master.id(), mut)
	if err := apply(forged, x.s1.id()); !errors.As(err, &refusal) {
		t.Fatalf("a forged entry was not refused: %v", err)
	}
	// Without a signature.
	env.Payload, env.Att = mut, origin.Attestation{}
	unsigned, _ := c.Marshal(env)
	if err := apply(unsigned, x.s1.id()); !errors.As(err, &refusal) {
		t.Fatalf("an unsigned entry was not refused: %v", err)
	}
	// Genuine, but of a protocol the nano does not serve: its receiver
	// refuses it.
	protocol = "/gardend/unknown/1"
	unknown := sign(x.master, x.master.id(), mut)
	protocol = node.ProtoResource
	if err := apply(unknown, x.s1.id()); !errors.As(err, &refusal) {
		t.Fatalf("an entry of an unknown protocol was not refused: %v", err)
	}
	// Malformed.
	if err := apply([]byte{0xff, 0x00}, x.s1.id()); !errors.As(err, &refusal) {
		t.Fatalf("a malformed envelope was not refused: %v", err)
	}
	if got := catalogue(t, x.n); len(got) != 0 {
		t.Fatalf("refused entries changed the catalogue: %v", got)
	}
	counts := x.n.relay.Counts()
	if counts["relay_refused_signature_bad_signature"] != 2 || counts["relay_refused_signature_malformed"] != 1 ||
		counts["relay_refused_malformed"] != 1 || counts["relay_refused_by_receiver"] != 1 {
		t.Fatalf("refusals not counted by reason: %v", counts)
	}
	// A stranger may not hand envelopes over at all.
	stranger := x.f.member("stranger", node.RoleStation, "")
	if err := x.n.relay.admit(stranger.id()); !errors.As(err, &refusal) {
		t.Fatalf("an unknown station was admitted: %v", err)
	}
	// The genuine entry applies once, however often it is replayed.
	for range 3 {
		if err := apply(genuine, x.s1.id()); err != nil {
			t.Fatal(err)
		}
	}
	if got := catalogue(t, x.n)["r1"]; got != "from the master" {
		t.Fatalf("the genuine entry was not applied: %q", got)
	}
	if a, d := metric(x.n, "relayed_applied"), metric(x.n, "deliveries_duplicate"); a != 1 || d != 2 {
		t.Fatalf("replays: applied %d, duplicates %d; want 1 and 2", a, d)
	}
}

// TestStationRestartKeepsCustody: a station takes custody of the nano's
// entries while its ground link is down, stops (its process gone), and
// forwards them all once restarted on the same store.
func TestStationRestartKeepsCustody(t *testing.T) {
	x := newTwoStations(t)
	testnet.Cut(x.s1.Process, x.master.Process)
	up := bodies("board", 6)
	x.put(t, x.n, up)
	x.f.clock.Set(x.svalbard.Start.Add(2 * time.Second))
	eventually(t, "svalbard holds the nano's entries", func() bool {
		return x.s1.Store.Len(string(x.master.id())) == len(up) && x.n.Store.Len("") == 0
	})
	// Its status: what it holds for the master, and from which nano.
	rep, err := x.s1.relay.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Held) != 1 || rep.Held[0].Uplink != len(up) || rep.Held[0].UplinkFrom[x.n.id().String()] != len(up) {
		t.Fatalf("svalbard's status: %+v", rep.Held)
	}
	dir, opts, ropts := x.s1.dir, x.s1.opts, x.s1.ropts
	x.s1.close()
	x.master.Host.Gater.Unblock(x.s1.id())
	s1 := x.f.member("svalbard", node.RoleStation, dir)
	x.f.start(s1, opts, ropts)
	// Its failed attempts to reach the master backed off on the simulated
	// clock: time passes while it restarts.
	x.f.clock.Add(5 * time.Second)
	expectCatalogue(t, x.master, up)
	eventually(t, "svalbard empty", func() bool { return s1.Store.Len("") == 0 })
	if a, d := metric(x.master, "relayed_applied"), metric(x.master, "deliveries_duplicate"); a != uint64(len(up)) || d != 0 {
		t.Fatalf("master applied %d (duplicates %d), want %d and 0", a, d, len(up))
	}
}

// TestSameEntryThroughTwoStations: an entry both stations hold (a custody
// acknowledgement lost, the nano handing it again at the next pass) is
// applied once at the master.
func TestSameEntryThroughTwoStations(t *testing.T) {
	x := newTwoStations(t)
	mut, err := x.f.codec.Marshal(&node.Mutation{Resource: "twice", Op: uint8(dtn.OpCreate), Body: []byte("once")})
	if err != nil {
		t.Fatal(err)
	}
	env := &Envelope{Origin: []byte(x.n.id()), Dest: []byte(x.master.id()), ID: 5, Protocol: node.ProtoResource,
		Op: uint8(dtn.OpCreate), Resource: "twice", Level: uint8(dtn.Critical), Payload: mut}
	body := x.signedByNano(t, env)
	for _, s := range []*member{x.s1, x.s2} {
		if _, _, err := s.Store.Enqueue(context.Background(), dtn.Entry{Dest: string(x.master.id()), Protocol: Protocol, Payload: body, Level: dtn.Critical}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both stations forwarded", func() bool { return x.s1.Store.Len("") == 0 && x.s2.Store.Len("") == 0 })
	if got := catalogue(t, x.master)["twice"]; got != "once" {
		t.Fatalf("master holds %q", got)
	}
	if a, d := metric(x.master, "relayed_applied"), metric(x.master, "deliveries_duplicate"); a != 1 || d != 1 {
		t.Fatalf("applied %d, duplicates %d; want 1 and 1", a, d)
	}
}

// TestUnreachableStationReclaimed: the master hands the nano's entries to
// svalbard, whose window comes first, but cannot reach it; when that window
// has passed it takes them back and they cross kiruna.
func TestUnreachableStationReclaimed(t *testing.T) {
	x := newTwoStations(t)
	testnet.Cut(x.s1.Process, x.master.Process)
	down := bodies("ground", 4)
	x.put(t, x.master, down)
	eventually(t, "the entries queued for svalbard", func() bool {
		return x.master.Store.Len(string(x.s1.id())) == len(down)
	})
	x.f.clock.Set(x.svalbard.End.Add(time.Second))
	eventually(t, "kiruna holds them", func() bool {
		return x.s2.Store.Len(string(x.n.id())) == len(down) && x.master.Store.Len("") == 0
	})
	if got := x.master.relay.Counts()["relay_reclaimed"]; got != uint64(len(down)) {
		t.Errorf("reclaimed %d, want %d", got, len(down))
	}
	expectHanded(t, x, "kiruna", x.kiruna.End, len(down))
	x.f.clock.Set(x.kiruna.Start.Add(2 * time.Second))
	expectCatalogue(t, x.n, down)
	// Acknowledged (so counted: the nano counts before it acknowledges).
	eventually(t, "kiruna empty", func() bool { return x.s2.Store.Len("") == 0 })
	if a, d := metric(x.n, "deliveries_applied"), metric(x.n, "deliveries_duplicate"); a != uint64(len(down)) || d != 0 {
		t.Fatalf("nano applied %d (duplicates %d), want %d", a, d, len(down))
	}
}

// signedByNano signs env as the nano's own entry for the master (its
// end-to-end signature) and encodes it.
func (x *twoStations) signedByNano(t *testing.T, env *Envelope) []byte {
	t.Helper()
	atts, err := origin.SignEntries(x.n.KS, x.n.KS.PublicKey(), []origin.Entry{env.signed(x.n.id(), x.master.id())})
	if err != nil {
		t.Fatal(err)
	}
	env.Att = atts[0]
	body, err := x.f.codec.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
