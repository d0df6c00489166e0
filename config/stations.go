package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"gardend/plan"
)

// PredictionLead is how far before now predictions start, so a pass in
// progress when a plan is made is whole in it.
const PredictionLead = time.Hour

// stationKey is the dotted key of field in the i-th [[stations]] table
// (counted from 1, as the file reads).
func stationKey(i int, field string) string { return fmt.Sprintf("stations[%d].%s", i+1, field) }

// validateStations checks [[stations]] and the station key. isStation: the
// station role is configured. Every station needs a location, even where
// plans are static: orbit elements may be pushed to a nano at any time.
func (c *Config) validateStations(add func(key, format string, args ...any), isStation bool) {
	names := map[string]int{}
	peers := map[string]int{}
	for i, gs := range c.Stations {
		if gs.Name == "" {
			add(stationKey(i, "name"), "required: windows, logs and `station` name the station by it")
		} else if err := plan.CheckStationName(gs.Name); err != nil {
			add(stationKey(i, "name"), "%v", err)
		} else if j, dup := names[gs.Name]; dup {
			add(stationKey(i, "name"), "%q already names stations[%d]", gs.Name, j+1)
		} else {
			names[gs.Name] = i
		}
		switch id, err := peer.Decode(gs.PeerID); {
		case gs.PeerID == "":
			add(stationKey(i, "peer_id"), "required: nanos and the master reach the station by it")
		case err != nil:
			add(stationKey(i, "peer_id"), "%q is not a peer ID: %v", gs.PeerID, err)
		default:
			if j, dup := peers[id.String()]; dup {
				add(stationKey(i, "peer_id"), "already the peer of stations[%d]: one process is one station", j+1)
			}
			peers[id.String()] = i
		}
		for _, s := range gs.Addrs {
			if err := checkTCPAddr(s, false); err != nil {
				add(stationKey(i, "addrs"), "%q: %v", s, err)
			}
		}
		if gs.Location == "" {
			add(stationKey(i, "location"), "required: LAT,LON,ALT, to predict passes from orbit elements (configured or pushed)")
		} else if _, err := ParseStation(gs.Location); err != nil {
			add(stationKey(i, "location"), "%v", err)
		}
		if e := gs.MinElevation; e != nil && (*e < 0 || *e >= 90) {
			add(stationKey(i, "min_elevation"), "%g is outside [0, 90) degrees", *e)
		}
	}
	switch {
	case c.Station != "" && !isStation:
		add("station", "only a process with the station role is a station: add \"station\" to roles, or remove this key")
	case c.Station != "" && len(c.Stations) == 0:
		add("station", "%q names a [[stations]] entry, but there is none", c.Station)
	case c.Station != "":
		if _, ok := names[c.Station]; !ok {
			add("station", "%q is not the name of any [[stations]] entry (%s)", c.Station, strings.Join(c.StationNames(), ", "))
		}
	case isStation && len(c.Stations) > 0:
		add("station", "required with the station role when [[stations]] is set: the name of the entry this process is")
	}
}

// StationNames returns the names of the [[stations]] entries, in order.
func (c *Config) StationNames() []string {
	out := make([]string, 0, len(c.Stations))
	for _, gs := range c.Stations {
		out = append(out, gs.Name)
	}
	return out
}

// StationMinElevation is the entry's minimum elevation: its own, else
// profile.min_elevation.
func (c *Config) StationMinElevation(gs GroundStation) float64 {
	if gs.MinElevation != nil {
		return *gs.MinElevation
	}
	return c.Profile.MinElevation
}

// PlanStations returns the [[stations]] entries as stations to predict
// passes over (named, located, minimum elevation resolved); nil when there
// is none. Valid after Validate.
func (c *Config) PlanStations() ([]plan.Station, error) {
	var out []plan.Station
	for i, gs := range c.Stations {
		loc, err := ParseStation(gs.Location)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", stationKey(i, "location"), err)
		}
		out = append(out, plan.Station{Name: gs.Name, Lat: loc.Lat, Lon: loc.Lon, AltM: loc.AltM, MinElevation: c.StationMinElevation(gs)})
	}
	return out, nil
}

// ErrNotAStation is returned by OwnStation for a process that is not one
// of the [[stations]].
var ErrNotAStation = errors.New("not one of the [[stations]]: set `station` to the name of this process's entry")

// OwnStation is the [[stations]] entry this process is (the station key).
func (c *Config) OwnStation() (GroundStation, error) {
	for _, gs := range c.Stations {
		if c.Station != "" && gs.Name == c.Station {
			return gs, nil
		}
	}
	return GroundStation{}, ErrNotAStation
}

// CheckOwnStation checks, for a process with the station role and
// [[stations]], that its entry's peer_id is id (this process's own
// identity): a station that answers under another identity would never be
// reached. Nothing to check otherwise.
func (c *Config) CheckOwnStation(id peer.ID) error {
	if !c.HasRole(RoleStation) || len(c.Stations) == 0 {
		return nil
	}
	gs, err := c.OwnStation()
	if err != nil {
		return fmt.Errorf("station: %w", err)
	}
	want, err := peer.Decode(gs.PeerID)
	if err != nil {
		return fmt.Errorf("stations entry %q: peer_id: %w", gs.Name, err)
	}
	if want != id {
		return fmt.Errorf("station %q: its peer_id is %s, this process's key is %s", gs.Name, want, id)
	}
	return nil
}

// Contacts returns the contact plan from planFile or elementsFile (give
// one; with neither it returns nil, nil). With [[stations]], passes are
// predicted over every station and a static plan's windows must each name
// one of them; without, passes are predicted over profile.station and
// windows are unnamed, as single-station setups always had. Predictions
// run from now-PredictionLead for span; now anchors ION relative times.
func (c *Config) Contacts(planFile, elementsFile string, now time.Time, span time.Duration) (*plan.Contacts, error) {
	switch {
	case planFile != "":
		return plan.LoadContacts(planFile, now, c.StationNames())
	case elementsFile == "":
		return nil, nil
	}
	var stations []plan.Station
	where := ""
	if len(c.Stations) > 0 {
		var err error
		if stations, err = c.PlanStations(); err != nil {
			return nil, err
		}
		where = fmt.Sprintf("any of %d stations", len(stations))
	} else {
		st, err := ParseStation(c.Profile.Station)
		if err != nil {
			return nil, fmt.Errorf("profile.station: %w", err)
		}
		stations = []plan.Station{{Lat: st.Lat, Lon: st.Lon, AltM: st.AltM, MinElevation: c.Profile.MinElevation}}
		where = c.Profile.Station
	}
	orbit, err := plan.LoadOrbit(elementsFile)
	if err != nil {
		return nil, err
	}
	cs, err := orbit.Contacts(stations, now.Add(-PredictionLead), span, 0)
	if err != nil {
		return nil, err
	}
	if cs.Len() == 0 {
		return nil, fmt.Errorf("%s: no pass over %s in the next %s", elementsFile, where, span)
	}
	return cs, nil
}

// OwnContacts is this node's own plan (profile.plan_file or
// profile.elements_file); nil when it has none.
func (c *Config) OwnContacts(now time.Time, span time.Duration) (*plan.Contacts, error) {
	return c.Contacts(c.Profile.PlanFile, c.Profile.Elements(), now, span)
}

// NanoContacts returns the plan of every [[nanos]] entry that has a
// plan_file or an elements_file, by peer ID: what a master (and the
// routing over its stations) knows of when each nano is over which station.
func (c *Config) NanoContacts(now time.Time, span time.Duration) (map[peer.ID]*plan.Contacts, error) {
	out := map[peer.ID]*plan.Contacts{}
	for i, nn := range c.Nanos {
		if nn.PlanFile == "" && nn.Elements() == "" {
			continue
		}
		id, err := peer.Decode(nn.PeerID)
		if err != nil {
			return nil, fmt.Errorf("nano %d: %w", i+1, err)
		}
		cs, err := c.Contacts(nn.PlanFile, nn.Elements(), now, span)
		if err != nil {
			return nil, fmt.Errorf("nano %s: %w", nn.PeerID, err)
		}
		out[id] = cs
	}
	return out, nil
}
