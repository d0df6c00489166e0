// Package config reads gardend's TOML configuration file, applies command-line
// overrides and validates the result, reporting every problem with the line
// of the file it comes from. It only describes what to run; the packages that
// run it take plain values from it.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"gardend/hsm"
)

// Role names accepted in `roles`.
const (
	RoleNano    = "nano"
	RoleMaster  = "master"
	RoleIndexer = "indexer"
	RoleStation = "station"
)

// Connectivity profiles accepted in `profile.kind`.
const (
	ProfileContinuous   = "continuous"
	ProfileIntermittent = "intermittent"
	ProfileOrbital      = "orbital"
)

// Config is the whole configuration. Field comments are the documentation;
// gardend.example.toml shows every field with its default.
type Config struct {
	Name     string   `toml:"name"`      // human-readable site name, in records and logs
	Roles    []string `toml:"roles"`     // nano, master, indexer, station; several allowed except nano with others
	DataDir  string   `toml:"data_dir"`  // state database, software key, control socket
	Listen   []string `toml:"listen"`    // libp2p listen multiaddrs (TCP)
	PSKFile  string   `toml:"psk_file"`  // private-network key, go-libp2p pnet format
	Key      string   `toml:"key"`       // identity: pkcs11: URI or key file path
	LogLevel string   `toml:"log_level"` // debug, info, warn, error

	ControlSocket  string `toml:"control_socket"`  // unix socket for `gardend status`; default <data_dir>/control.sock
	WatchdogDevice string `toml:"watchdog_device"` // hardware watchdog to pet while healthy, e.g. /dev/watchdog; empty: none

	Master   Peer     `toml:"master"`
	Nanos    []Peer   `toml:"nanos"` // master: the nanos it governs ([[nanos]] tables)
	Indexers Indexers `toml:"indexers"`
	Indexer  Indexer  `toml:"indexer"`
	Delivery Delivery `toml:"delivery"`
	Profile  Profile  `toml:"profile"`
	Codec    Codec    `toml:"codec"`
	Metrics  Metrics  `toml:"metrics"`
	Fleet    Fleet    `toml:"fleet"`

	// Stations lists the ground stations ([[stations]] tables). When set, a
	// nano's contact plan is the union of its windows over every station,
	// each window naming its station, on the nano and on its master.
	Stations []GroundStation `toml:"stations"`
	// Station is, for a process with the station role, the name of the
	// [[stations]] entry it is (its peer_id must be this process's own).
	Station string `toml:"station"`

	// lines maps dotted keys to the line that set them (for error reports).
	lines map[string]int
	// file is the path the config was read from, if any.
	file string
}

// Peer names another node: a nano's master, or one of a master's nanos.
// For a nano, a master may also know its connectivity: profile and plan.
type Peer struct {
	PeerID   string   `toml:"peer_id"`
	Addrs    []string `toml:"addrs"`
	Profile  string   `toml:"profile"`   // nanos: continuous, intermittent or orbital (default orbital with a plan)
	PlanFile string   `toml:"plan_file"` // nanos: static contact plan
	// nanos: orbit elements (TLE or OMM, format detected) to predict passes
	// over profile.station; tle_file is its old name, still accepted.
	ElementsFile string `toml:"elements_file"`
	TLEFile      string `toml:"tle_file"`
}

// Elements is the nano's elements file, under either name.
func (p Peer) Elements() string { return cmpOr(p.ElementsFile, p.TLEFile) }

// DefaultStationMinElevation is the minimum elevation of a [[stations]]
// entry that gives none and of profile.min_elevation: 10°, where the link
// margin of a small satellite's radio is usually closed and terrain rarely
// masks the horizon.
const DefaultStationMinElevation = 10.0

// GroundStation is one [[stations]] table: a ground process beside an
// antenna that nanos reach during their passes over it.
type GroundStation struct {
	Name     string   `toml:"name"`     // required, unique: letters, digits, - _ . (windows and logs name it)
	PeerID   string   `toml:"peer_id"`  // required: the station process's peer ID
	Addrs    []string `toml:"addrs"`    // its libp2p multiaddrs (TCP)
	Location string   `toml:"location"` // required: LAT,LON,ALT (degrees, degrees, metres), to predict passes
	// MinElevation is in degrees; default profile.min_elevation (itself
	// default 10).
	MinElevation *float64 `toml:"min_elevation"`
}

// Indexer configures the indexer role.
type Indexer struct {
	DHT         bool `toml:"dht"`          // serve the Kademlia DHT; default true
	MaxSessions int  `toml:"max_sessions"` // heartbeat sessions; default 16384 (a fleet of 10 000 nanos and its ground)
}

// Delivery tunes the store-and-forward delivery engine.
type Delivery struct {
	MaxDrains int `toml:"max_drains"` // destinations drained at once; default 32
}

// Indexers lists the indexers to heartbeat to and bootstrap the DHT from.
type Indexers struct {
	Seeds []string `toml:"seeds"` // multiaddrs ending in /p2p/<peer id>
}

// Profile is the connectivity profile and where its contact plan comes from.
type Profile struct {
	Kind         string  `toml:"kind"`          // continuous, intermittent, orbital
	PlanFile     string  `toml:"plan_file"`     // static contact plan (ION lines, TOML or CSV)
	ElementsFile string  `toml:"elements_file"` // orbit elements to predict passes from: TLE (Alpha-5 too) or OMM (JSON, KVN, XML, CSV)
	TLEFile      string  `toml:"tle_file"`      // the old name of elements_file, still accepted
	Station      string  `toml:"station"`       // ground station LAT,LON,ALT (degrees, degrees, metres) for predictions
	MinElevation float64 `toml:"min_elevation"` // degrees; default 10

	// Optional overrides of the profile's timings ("30s", "2m"); empty keeps
	// the profile's default. They apply to this node and to what a master
	// assumes of its nanos.
	HeartbeatInterval Duration `toml:"heartbeat_interval"`
	Guard             Duration `toml:"guard"`
	Grace             Duration `toml:"grace"`
	RetryBase         Duration `toml:"retry_base"`
	RetryCeiling      Duration `toml:"retry_ceiling"`
}

// Elements is the profile's elements file, under either name.
func (p Profile) Elements() string { return cmpOr(p.ElementsFile, p.TLEFile) }

// elementsKey is the key that named the elements file, for error lines.
func (p Profile) elementsKey() string {
	if p.ElementsFile == "" && p.TLEFile != "" {
		return "profile.tle_file"
	}
	return "profile.elements_file"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Metrics configures the Prometheus endpoint.
// Fleet sets the fleet's reports (nano) and history (master).
type Fleet struct {
	// HealthInterval is how often a nano in contact reports besides AOS and
	// the last call; default 10m (a pushed setting may change it).
	HealthInterval Duration `toml:"health_interval"`
}

type Metrics struct {
	Listen string `toml:"listen"` // HOST:PORT for GET /metrics; empty: no listener
}

// Duration is a TOML string such as "30s" or "2m".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. \"30s\", \"2m\")", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", b)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Codec bounds what one message may cost to decode.
type Codec struct {
	MaxFrame int `toml:"max_frame"` // bytes; default 65536
}

// Defaults returns the configuration used where the file is silent.
func Defaults() Config {
	return Config{
		Name:     "gardend",
		Roles:    []string{RoleNano},
		DataDir:  "/var/lib/gardend",
		Listen:   []string{"/ip4/0.0.0.0/tcp/4001"},
		PSKFile:  "/etc/gardend/psk.key",
		Key:      "/var/lib/gardend/identity.key",
		LogLevel: "info",
		Profile:  Profile{Kind: ProfileContinuous, MinElevation: DefaultStationMinElevation},
		Indexer:  Indexer{DHT: true, MaxSessions: 16384},
		Delivery: Delivery{MaxDrains: 32},
		Codec:    Codec{MaxFrame: 64 << 10},
	}
}

// Problem is one validation error, tied to a key and, when known, a line.
type Problem struct {
	Line int    // 1-based line in the file; 0 when not from the file
	Key  string // dotted key, e.g. "master.peer_id"
	Msg  string
}

// Problems is every error found in a configuration; it is an error itself.
type Problems struct {
	File  string
	Items []Problem
}

func (p *Problems) Error() string {
	var b strings.Builder
	for i, it := range p.Items {
		if i > 0 {
			b.WriteByte('\n')
		}
		loc := p.File
		if loc == "" {
			loc = "config"
		}
		if it.Line > 0 {
			loc = fmt.Sprintf("%s:%d", loc, it.Line)
		}
		if it.Key != "" {
			fmt.Fprintf(&b, "%s: %s: %s", loc, it.Key, it.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", loc, it.Msg)
		}
	}
	return b.String()
}

// Load reads and parses path on top of Defaults. It does not validate: call
// Validate once overrides are applied. Syntax errors and unknown keys come
// back as *Problems with lines.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load on bytes; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	c := Defaults()
	c.file = name
	probs := &Problems{File: name}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var derr *toml.DecodeError
		var serr *toml.StrictMissingError
		switch {
		case errors.As(err, &serr):
			for _, e := range serr.Errors {
				row, _ := e.Position()
				probs.Items = append(probs.Items, Problem{Line: row, Key: strings.Join(e.Key(), "."), Msg: "unknown key"})
			}
		case errors.As(err, &derr):
			row, _ := derr.Position()
			probs.Items = append(probs.Items, Problem{Line: row, Key: strings.Join(derr.Key(), "."), Msg: derr.Error()})
		default:
			probs.Items = append(probs.Items, Problem{Msg: err.Error()})
		}
		return nil, probs
	}
	c.lines = keyLines(data)
	return &c, nil
}

// keyLines maps each dotted key of a syntactically valid document to its line.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	count := map[string]int{} // [[array]] tables seen so far, by key
	indexed := ""             // "stations[2]" inside the second [[stations]]
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		it := e.Key()
		line := 0
		for it.Next() {
			n := it.Node()
			parts = append(parts, string(n.Data))
			if line == 0 && n.Raw.Length > 0 {
				line = p.Shape(n.Raw).Start.Line
			}
		}
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table, indexed = parts, ""
			key := strings.Join(table, ".")
			if e.Kind == unstable.ArrayTable {
				count[key]++
				indexed = fmt.Sprintf("%s[%d]", key, count[key])
				lines[indexed] = line
			}
			if line > 0 {
				lines[key] = line
			}
		case unstable.KeyValue:
			if line == 0 {
				line = p.Shape(e.Value().Raw).Start.Line
			}
			lines[strings.Join(append(slices.Clone(table), parts...), ".")] = line
			if indexed != "" {
				lines[indexed+"."+strings.Join(parts, ".")] = line
			}
		}
	}
	return lines
}

// HasRole reports whether role is configured.
func (c *Config) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// File is the path the configuration was read from ("" for defaults only).
func (c *Config) File() string { return c.file }

// ControlPath is the control socket's path.
func (c *Config) ControlPath() string {
	if c.ControlSocket != "" {
		return c.ControlSocket
	}
	return filepath.Join(c.DataDir, "control.sock")
}

// KeyRef returns the parsed identity reference; valid after Validate.
func (c *Config) KeyRef() (hsm.KeyRef, error) { return hsm.ParseKeyRef(c.Key) }

// Validate checks every setting and returns *Problems listing all errors at
// once, each with its line when the key came from the file.
func (c *Config) Validate() error {
	probs := &Problems{File: c.file}
	add := func(key, format string, args ...any) {
		probs.Items = append(probs.Items, Problem{Line: c.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	if strings.TrimSpace(c.Name) == "" {
		add("name", "must not be empty")
	}
	if len(c.Roles) == 0 {
		add("roles", "at least one role is required (nano, master, indexer, station)")
	}
	seen := map[string]bool{}
	for _, r := range c.Roles {
		switch r {
		case RoleNano, RoleMaster, RoleIndexer, RoleStation:
		default:
			add("roles", "unknown role %q (want nano, master, indexer or station)", r)
		}
		if seen[r] {
			add("roles", "role %q listed twice", r)
		}
		seen[r] = true
	}
	if seen[RoleNano] && (seen[RoleMaster] || seen[RoleIndexer] || seen[RoleStation]) {
		add("roles", "a nano is governed by a master and never serves the DHT: it cannot also be master, indexer or station")
	}
	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}
	for _, s := range c.Listen {
		if err := checkTCPAddr(s, false); err != nil {
			add("listen", "%q: %v", s, err)
		}
	}
	if c.PSKFile == "" {
		add("psk_file", "required: gardend only runs on a private network")
	}
	if _, err := hsm.ParseKeyRef(c.Key); err != nil {
		add("key", "%v", err)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	if seen[RoleNano] && c.Master.PeerID == "" {
		add("master.peer_id", "required for a nano: the only peer allowed to change its catalogue")
	}
	if c.Master.PeerID != "" {
		if _, err := peer.Decode(c.Master.PeerID); err != nil {
			add("master.peer_id", "%q is not a peer ID: %v", c.Master.PeerID, err)
		}
	}
	for _, s := range c.Master.Addrs {
		if err := checkTCPAddr(s, false); err != nil {
			add("master.addrs", "%q: %v", s, err)
		}
	}
	if len(c.Nanos) > 0 && !seen[RoleMaster] && !(seen[RoleStation] && len(c.Stations) > 0) {
		// A station lists them too: it relays for them, and their plans say
		// when each passes over it.
		add("nanos", "only a master governs nanos, and a station relays for them: add \"master\" or \"station\" to roles")
	}
	for i, nn := range c.Nanos {
		switch nn.Profile {
		case "", ProfileContinuous, ProfileIntermittent, ProfileOrbital:
		default:
			add("nanos", "nano %d: profile %q is not one of continuous, intermittent, orbital", i+1, nn.Profile)
		}
		if nn.ElementsFile != "" && nn.TLEFile != "" {
			add("nanos", "nano %d: tle_file is the old name of elements_file: give one of them", i+1)
		}
		if nn.PlanFile != "" && nn.Elements() != "" {
			add("nanos", "nano %d: give a plan_file or an elements_file, not both", i+1)
		}
		if _, err := peer.Decode(nn.PeerID); err != nil {
			add("nanos", "nano %d: %q is not a peer ID: %v", i+1, nn.PeerID, err)
		}
		for _, s := range nn.Addrs {
			if err := checkTCPAddr(s, false); err != nil {
				add("nanos", "nano %d: %q: %v", i+1, s, err)
			}
		}
	}
	if c.Indexer.MaxSessions < 1 {
		add("indexer.max_sessions", "must be at least 1")
	}
	if c.Delivery.MaxDrains < 1 {
		add("delivery.max_drains", "must be at least 1")
	}
	for _, s := range c.Indexers.Seeds {
		if err := checkTCPAddr(s, true); err != nil {
			add("indexers.seeds", "%q: %v", s, err)
		}
	}
	switch c.Profile.Kind {
	case ProfileContinuous, ProfileIntermittent, ProfileOrbital:
	default:
		add("profile.kind", "%q is not one of continuous, intermittent, orbital", c.Profile.Kind)
	}
	if c.Profile.ElementsFile != "" && c.Profile.TLEFile != "" {
		add("profile.tle_file", "tle_file is the old name of elements_file: give one of them")
	}
	if c.Profile.PlanFile != "" && c.Profile.Elements() != "" {
		add(c.Profile.elementsKey(), "give a plan_file or an elements_file, not both")
	}
	needStation := c.Profile.Elements() != ""
	for _, nn := range c.Nanos {
		needStation = needStation || nn.Elements() != ""
	}
	c.validateStations(add, seen[RoleStation])
	if needStation && len(c.Stations) == 0 {
		if _, err := ParseStation(c.Profile.Station); err != nil {
			add("profile.station", "%v (needed to predict passes from orbit elements)", err)
		}
	}
	if c.Profile.Kind == ProfileOrbital && c.Profile.PlanFile == "" && c.Profile.Elements() == "" {
		add("profile.kind", "an orbital node needs a plan_file or an elements_file")
	}
	if c.Profile.MinElevation < 0 || c.Profile.MinElevation >= 90 {
		add("profile.min_elevation", "%g is outside [0, 90) degrees", c.Profile.MinElevation)
	}
	if c.Codec.MaxFrame < 1024 || c.Codec.MaxFrame > 16<<20 {
		add("codec.max_frame", "%d is outside 1024 .. 16777216 bytes", c.Codec.MaxFrame)
	}
	if v := c.Fleet.HealthInterval.Duration; v != 0 && v < 10*time.Second {
		add("fleet.health_interval", "%s is below 10s", v)
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			add("metrics.listen", "%q: want HOST:PORT, e.g. 127.0.0.1:9470", c.Metrics.Listen)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			add("metrics.listen", "%q: port must be a number in 0..65535", c.Metrics.Listen)
		}
	}
	if len(probs.Items) == 0 {
		return nil
	}
	sort.SliceStable(probs.Items, func(i, j int) bool { return probs.Items[i].Line < probs.Items[j].Line })
	return probs
}

// CheckFiles reports referenced files that are missing or unreadable. It is
// separate from Validate so a config can be checked on another machine.
func (c *Config) CheckFiles() error {
	probs := &Problems{File: c.file}
	need := func(key, path string) {
		if path == "" {
			return
		}
		if _, err := os.Stat(path); err != nil {
			probs.Items = append(probs.Items, Problem{Line: c.line(key), Key: key, Msg: err.Error()})
		}
	}
	need("psk_file", c.PSKFile)
	need("profile.plan_file", c.Profile.PlanFile)
	need(c.Profile.elementsKey(), c.Profile.Elements())
	for _, nn := range c.Nanos {
		need("nanos", nn.PlanFile)
		need("nanos", nn.Elements())
	}
	// A software key file may not exist yet (keygen makes it); a token's
	// module must.
	if ref, err := hsm.ParseKeyRef(c.Key); err == nil && ref.Token != nil {
		need("key", ref.Token.ModulePath)
	}
	if len(probs.Items) == 0 {
		return nil
	}
	return probs
}

// Given reports whether key (dotted, e.g. "indexer.dht") was set, in the
// file (line is its line) or by a flag (line 0), rather than left to its
// default.
func (c *Config) Given(key string) (line int, ok bool) {
	line, ok = c.lines[key]
	return line, ok
}

func (c *Config) line(key string) int {
	if n, ok := c.lines[key]; ok {
		return n
	}
	// A key set inside its table: fall back to the table's header line.
	if i := strings.LastIndexByte(key, '.'); i > 0 {
		return c.lines[key[:i]]
	}
	return 0
}

func checkTCPAddr(s string, wantPeer bool) error {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return err
	}
	if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
		return errors.New("needs a /tcp/ component: TCP is gardend's only transport")
	}
	if wantPeer {
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return errors.New("must end with /p2p/<peer id>")
		}
	}
	return nil
}

// Overrides holds command-line values that take precedence over the file.
type Overrides struct {
	fs       *flag.FlagSet
	roles    string
	dataDir  string
	listen   string
	pskFile  string
	key      string
	logLevel string
	profile  string
}

// BindFlags declares the override flags on fs.
func BindFlags(fs *flag.FlagSet) *Overrides {
	o := &Overrides{fs: fs}
	fs.StringVar(&o.roles, "roles", "", "comma-separated roles, overrides `roles` (nano, master, indexer, station)")
	fs.StringVar(&o.dataDir, "data-dir", "", "overrides `data_dir`")
	fs.StringVar(&o.listen, "listen", "", "comma-separated multiaddrs, overrides `listen`")
	fs.StringVar(&o.pskFile, "psk-file", "", "overrides `psk_file`")
	fs.StringVar(&o.key, "key", "", "pkcs11: URI or key file, overrides `key`")
	fs.StringVar(&o.logLevel, "log-level", "", "overrides `log_level` (debug, info, warn, error)")
	fs.StringVar(&o.profile, "profile", "", "overrides `profile.kind` (continuous, intermittent, orbital)")
	return o
}

// Apply copies every flag that was set on the command line into c. Errors
// about a key set by a flag carry no file line.
func (o *Overrides) Apply(c *Config) {
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	o.fs.Visit(func(f *flag.Flag) {
		key := ""
		switch f.Name {
		case "roles":
			c.Roles, key = split(o.roles), "roles"
		case "data-dir":
			c.DataDir, key = o.dataDir, "data_dir"
		case "listen":
			c.Listen, key = split(o.listen), "listen"
		case "psk-file":
			c.PSKFile, key = o.pskFile, "psk_file"
		case "key":
			c.Key, key = o.key, "key"
		case "log-level":
			c.LogLevel, key = o.logLevel, "log_level"
		case "profile":
			c.Profile.Kind, key = o.profile, "profile.kind"
		}
		if key != "" {
			if c.lines == nil {
				c.lines = map[string]int{}
			}
			c.lines[key] = 0 // known, but not from the file
		}
	})
}

// Station is a ground station for pass prediction.
type Station struct{ Lat, Lon, AltM float64 }

// ParseStation reads LAT,LON,ALT (degrees, degrees, metres).
func ParseStation(s string) (Station, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return Station{}, fmt.Errorf("want LAT,LON,ALT, got %q", s)
	}
	var v [3]float64
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return Station{}, fmt.Errorf("%q is not a number", p)
		}
		v[i] = f
	}
	if v[0] < -90 || v[0] > 90 || v[1] < -180 || v[1] > 360 {
		return Station{}, errors.New("latitude must be in [-90, 90] and longitude in [-180, 360]")
	}
	return Station{Lat: v[0], Lon: v[1], AltM: v[2]}, nil
}
