package config

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/plan"
)

// polarTLE is a made-up sun-synchronous nano (97.5°, 15.2 rev/day),
// epoch 2026-11-21 12:00 UTC.
const polarTLE = "POLAR NANO\n" +
	"1 99901U 26001A   26325.50000000  .00001000  00000-0  50000-4 0  9990\n" +
	"2 99901  97.5000 330.0000 0010000  90.0000 270.0000 15.20000000 10005\n"

var dayOne = time.Date(2026, 11, 21, 13, 0, 0, 0, time.UTC)

func newID(t *testing.T) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// threeStations is a master's configuration that is also the Svalbard
// station, governing one polar nano predicted from its TLE.
func threeStations(t *testing.T, ids []peer.ID, nanoEntry string) string {
	return `name = "mcc"
roles = ["master", "indexer", "station"]
station = "svalbard"

[[nanos]]
peer_id = "` + ids[3].String() + `"
` + nanoEntry + `

[[stations]]
name = "svalbard"
peer_id = "` + ids[0].String() + `"
addrs = ["/ip4/10.0.0.1/tcp/4001"]
location = "78.23,15.39,450"

[[stations]]
name = "kiruna"
peer_id = "` + ids[1].String() + `"
location = "67.86,20.96,400"
min_elevation = 5

[[stations]]
name = "toulouse"
peer_id = "` + ids[2].String() + `"
location = "43.6,1.44,150"
`
}

func TestNanoPlanOverEveryStation(t *testing.T) {
	dir := t.TempDir()
	tle := filepath.Join(dir, "polar.tle")
	os.WriteFile(tle, []byte(polarTLE), 0o600)
	ids := []peer.ID{newID(t), newID(t), newID(t), newID(t)}
	c, err := Parse("mcc.toml", []byte(threeStations(t, ids, `elements_file = "`+tle+`"`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.StationNames(), ","); got != "svalbard,kiruna,toulouse" {
		t.Fatal(got)
	}
	sts, err := c.PlanStations()
	if err != nil || len(sts) != 3 || sts[0].MinElevation != DefaultStationMinElevation || sts[1].MinElevation != 5 || sts[2].Lat != 43.6 {
		t.Fatalf("%v %+v", err, sts)
	}
	plans, err := c.NanoContacts(dayOne, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cs := plans[ids[3]]
	if len(plans) != 1 || cs == nil {
		t.Fatalf("plans: %v", plans)
	}
	// Each station's windows are the nano's passes over it alone.
	o, err := plan.ParseTLE(polarTLE)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, st := range sts {
		passes, err := o.Passes(st, dayOne.Add(-PredictionLead), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got := cs.StationWindows(st.Name)
		if len(got) != len(passes) {
			t.Fatalf("%s: %d windows, %d passes", st.Name, len(got), len(passes))
		}
		for i, p := range passes {
			if got[i].Station != st.Name || !got[i].Start.Equal(p.AOS) || !got[i].End.Equal(p.LOS) {
				t.Fatalf("%s window %d: %+v, pass %+v", st.Name, i, got[i], p)
			}
		}
		count[st.Name] = len(got)
	}
	if count["svalbard"] < 2*count["toulouse"] || count["toulouse"] == 0 {
		t.Fatalf("windows per station: %v", count)
	}
	if u := cs.Union(); u.Len() >= cs.Len() {
		t.Fatalf("union %d windows, stations %d: no overlap merged", u.Len(), cs.Len())
	}
	// This process is Svalbard, and its key must be Svalbard's.
	if gs, err := c.OwnStation(); err != nil || gs.Name != "svalbard" {
		t.Fatalf("own station: %+v %v", gs, err)
	}
	if err := c.CheckOwnStation(ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckOwnStation(ids[1]); err == nil || !strings.Contains(err.Error(), "svalbard") {
		t.Fatalf("another key accepted as Svalbard's: %v", err)
	}
	// The master without elements for its nano has no plan for it.
	c.Nanos[0].ElementsFile = ""
	if plans, err := c.NanoContacts(dayOne, time.Hour); err != nil || len(plans) != 0 {
		t.Fatalf("%v %v", plans, err)
	}
}

func TestStaticPlanNamesConfiguredStations(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "plan.csv")
	ids := []peer.ID{newID(t), newID(t), newID(t), newID(t)}
	c, err := Parse("mcc.toml", []byte(threeStations(t, ids, `plan_file = "`+pf+`"`)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pf, []byte("start,end,station\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,svalbard\n2026-11-21T12:03:00Z,2026-11-21T12:09:00Z,kiruna\n"), 0o600)
	plans, err := c.NanoContacts(dayOne, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cs := plans[ids[3]]; cs.Len() != 2 || len(cs.Open(time.Date(2026, 11, 21, 12, 5, 0, 0, time.UTC), 0)) != 2 {
		t.Fatalf("%+v", cs.Windows())
	}
	os.WriteFile(pf, []byte("start,end,station\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,svalbard\n2026-11-21T12:03:00Z,2026-11-21T12:09:00Z,kourou\n"), 0o600)
	_, err = c.NanoContacts(dayOne, time.Hour)
	var pe *plan.ParseError
	if !errors.As(err, &pe) || pe.Line != 3 || !strings.Contains(err.Error(), pf+":3: station: \"kourou\" is not a configured station (svalbard, kiruna, toulouse)") {
		t.Fatalf("unknown station: %v", err)
	}
}

func TestStationsAreValidatedWithTheirLines(t *testing.T) {
	ids := []peer.ID{newID(t), newID(t)}
	src := `name = "mcc"
roles = ["master", "station"]
station = "nowhere"

[[stations]]
name = "svalbard"
peer_id = "` + ids[0].String() + `"
location = "78.23,15.39"

[[stations]]
name = "svalbard"
peer_id = "` + ids[0].String() + `"
location = "95,0,0"
min_elevation = 95
addrs = ["/ip4/10.0.0.2/udp/4001"]

[[stations]]
peer_id = "not-a-peer"
`
	c, err := Parse("mcc.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := problems(t, c.Validate())
	want := map[string]int{
		"station":                   3,
		"stations[1].location":      8,
		"stations[2].name":          11,
		"stations[2].peer_id":       12,
		"stations[2].location":      13,
		"stations[2].min_elevation": 14,
		"stations[2].addrs":         15,
		"stations[3].name":          17,
		"stations[3].peer_id":       18,
	}
	got := map[string]int{}
	for _, it := range p.Items {
		got[it.Key] = it.Line
	}
	for k, line := range want {
		if l, ok := got[k]; !ok || l != line {
			t.Errorf("%s: reported at line %d (%v), want %d\n%v", k, l, ok, line, p)
		}
	}
	for _, msg := range []string{
		`mcc.toml:11: stations[2].name: "svalbard" already names stations[1]`,
		"mcc.toml:8: stations[1].location: want LAT,LON,ALT",
		"mcc.toml:13: stations[2].location: latitude must be in [-90, 90]",
		`mcc.toml:3: station: "nowhere" is not the name of any [[stations]] entry`,
		"stations[3].name: required",
	} {
		if !strings.Contains(p.Error(), msg) {
			t.Errorf("missing %q in\n%v", msg, p)
		}
	}
}

func TestStationRoleRules(t *testing.T) {
	id := newID(t).String()
	entry := "\n[[stations]]\nname = \"kiruna\"\npeer_id = \"" + id + "\"\nlocation = \"67.86,20.96,400\"\n"
	for _, c := range []struct{ src, key, msg string }{
		{`roles = ["station"]` + entry, "station", "required with the station role"},
		{`roles = ["master"]` + "\nstation = \"kiruna\"\n" + entry, "station", "only a process with the station role"},
		{`roles = ["station"]` + "\nstation = \"kiruna\"\n", "station", "there is none"},
		{`roles = ["nano", "station"]` + "\n[master]\npeer_id = \"" + masterID + "\"\n", "roles", "cannot also be master, indexer or station"},
		// Every station needs a location; profile.station is then not
		// needed to predict from elements.
		{`roles = ["master"]` + "\n[profile]\nkind = \"orbital\"\nelements_file = \"x.tle\"\n" + strings.Replace(entry, "location", "# location", 1), "stations[1].location", "required"},
	} {
		cfg, err := Parse("c.toml", []byte(c.src))
		if err != nil {
			t.Fatal(err)
		}
		p := problems(t, cfg.Validate())
		found := false
		for _, it := range p.Items {
			found = found || it.Key == c.key && strings.Contains(it.Msg, c.msg)
			if it.Key == "profile.station" {
				t.Errorf("%s: profile.station asked for although [[stations]] is set: %v", c.src, p)
			}
		}
		if !found {
			t.Errorf("%s\nwant %s: %s, got\n%v", c.src, c.key, c.msg, p)
		}
	}
	// Today's single-station master that is its own station: valid as before.
	cfg, err := Parse("c.toml", []byte(`roles = ["master", "indexer", "station"]`))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckOwnStation(newID(t)); err != nil {
		t.Fatalf("single-station: %v", err)
	}
}

func TestSingleStationPlanIsUnchanged(t *testing.T) {
	dir := t.TempDir()
	tle := filepath.Join(dir, "polar.tle")
	os.WriteFile(tle, []byte(polarTLE), 0o600)
	c, err := Parse("sat.toml", []byte("roles = [\"nano\"]\n[master]\npeer_id = \""+masterID+"\"\n[profile]\nkind = \"orbital\"\nstation = \"43.6,1.44,150\"\nelements_file = \""+tle+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	cs, err := c.OwnContacts(dayOne, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := plan.ParseTLE(polarTLE)
	passes, _ := o.Passes(plan.Station{Lat: 43.6, Lon: 1.44, AltM: 150, MinElevation: 10}, dayOne.Add(-PredictionLead), 24*time.Hour)
	want, _ := plan.New(plan.Windows(passes, 0))
	if got := cs.Union().Windows(); len(got) != want.Len() || len(got) == 0 || strings.Join(cs.Stations(), ",") != "" {
		t.Fatalf("%d windows over %q, want %d unnamed", len(got), cs.Stations(), want.Len())
	}
	for i, w := range cs.Union().Windows() {
		if w != want.Windows()[i] {
			t.Fatalf("window %d: %+v, want %+v", i, w, want.Windows()[i])
		}
	}
	// A static plan naming stations is read as is when none is configured.
	pf := filepath.Join(dir, "plan.csv")
	os.WriteFile(pf, []byte("start,end,station\n2026-11-21T12:00:00Z,2026-11-21T12:08:00Z,anywhere\n"), 0o600)
	c.Profile.ElementsFile, c.Profile.PlanFile = "", pf
	if cs, err := c.OwnContacts(dayOne, time.Hour); err != nil || cs.Windows()[0].Station != "anywhere" {
		t.Fatalf("%v", err)
	}
	// No plan at all: nil, nil.
	c.Profile.PlanFile = ""
	if cs, err := c.OwnContacts(dayOne, time.Hour); cs != nil || err != nil {
		t.Fatalf("%v %v", cs, err)
	}
}
