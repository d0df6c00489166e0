package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"gardend/config"
)

// Settings are what may change in flight, as a TOML fragment:
//
//	log_level = "debug"
//	health_interval = "5m"
//	store_quota = 33554432       # bytes
//	[profile]
//	heartbeat_interval = "20s"   # also guard, grace
//
// Anything else is refused with its key named: identity, roles, addresses
// and the like never change from the ground. profile.retry_base and
// profile.retry_ceiling are refused too: the DTN store's backoff is fixed
// when it opens, so they change only in the configuration, at a restart.
type Settings struct {
	LogLevel       string          `toml:"log_level"`
	HealthInterval config.Duration `toml:"health_interval"`
	StoreQuota     int64           `toml:"store_quota"`
	Profile        ProfileTimings  `toml:"profile"`
}

// ProfileTimings are the profile's timings that may change in flight.
type ProfileTimings struct {
	HeartbeatInterval config.Duration `toml:"heartbeat_interval"`
	Guard             config.Duration `toml:"guard"`
	Grace             config.Duration `toml:"grace"`
	// RetryBase and RetryCeiling are read only to refuse them, and to
	// drop them from settings stored in force by older versions.
	RetryBase    config.Duration `toml:"retry_base"`
	RetryCeiling config.Duration `toml:"retry_ceiling"`
}

// mergeSettings is s with what frag sets on top: a settings push changes
// only the fields it names.
func mergeSettings(s Settings, frag *Settings) Settings {
	if frag.LogLevel != "" {
		s.LogLevel = frag.LogLevel
	}
	if frag.StoreQuota != 0 {
		s.StoreQuota = frag.StoreQuota
	}
	for _, o := range []struct{ v, dst *config.Duration }{{&frag.HealthInterval, &s.HealthInterval},
		{&frag.Profile.HeartbeatInterval, &s.Profile.HeartbeatInterval}, {&frag.Profile.Guard, &s.Profile.Guard},
		{&frag.Profile.Grace, &s.Profile.Grace}} {
		if o.v.Duration != 0 {
			*o.dst = *o.v
		}
	}
	return s
}

// encode writes s as a settings fragment that sets what s sets and
// nothing else; ParseSettings reads it back to s.
func (s Settings) encode() []byte {
	var b strings.Builder
	if s.LogLevel != "" {
		fmt.Fprintf(&b, "log_level = %q\n", s.LogLevel)
	}
	if v := s.HealthInterval.Duration; v != 0 {
		fmt.Fprintf(&b, "health_interval = %q\n", v.String())
	}
	if s.StoreQuota != 0 {
		fmt.Fprintf(&b, "store_quota = %d\n", s.StoreQuota)
	}
	var prof strings.Builder
	for _, o := range []struct {
		name string
		v    time.Duration
	}{{"heartbeat_interval", s.Profile.HeartbeatInterval.Duration}, {"guard", s.Profile.Guard.Duration},
		{"grace", s.Profile.Grace.Duration}} {
		if o.v != 0 {
			fmt.Fprintf(&prof, "%s = %q\n", o.name, o.v.String())
		}
	}
	if prof.Len() > 0 {
		b.WriteString("[profile]\n")
		b.WriteString(prof.String())
	}
	return []byte(b.String())
}

// PushError is a push refused by validation: the line and field at fault.
type PushError struct {
	Kind  Kind
	Line  int    // 0: not tied to a line
	Field string // the key or field at fault, if known
	Msg   string
}

func (e *PushError) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	if e.Line > 0 {
		fmt.Fprintf(&b, ": line %d", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": %s", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// ParseSettings reads and checks a settings fragment; nothing is applied.
func ParseSettings(data []byte) (*Settings, error) { return parseSettings(data, true) }

// parseSettingsInForce reads settings stored in force. Those stored by an
// older version may name profile.retry_base or retry_ceiling, which never
// took effect: they are dropped rather than refused, so the rest stays in
// force.
func parseSettingsInForce(data []byte) (*Settings, error) { return parseSettings(data, false) }

func parseSettings(data []byte, push bool) (*Settings, error) {
	var s Settings
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(&s)
	var strict *toml.StrictMissingError
	var derr *toml.DecodeError
	switch {
	case errors.As(err, &strict) && len(strict.Errors) > 0:
		e := strict.Errors[0]
		line, _ := e.Position()
		return nil, &PushError{Kind: KindSettings, Line: line, Field: strings.Join(e.Key(), "."), Msg: "may not change in flight (allowed: log_level, health_interval, store_quota, profile.heartbeat_interval, profile.guard, profile.grace)"}
	case errors.As(err, &derr):
		line, _ := derr.Position()
		return nil, &PushError{Kind: KindSettings, Line: line, Field: strings.Join(derr.Key(), "."), Msg: derr.Error()}
	case err != nil:
		return nil, &PushError{Kind: KindSettings, Msg: err.Error()}
	}
	field := func(name, msg string) error {
		return &PushError{Kind: KindSettings, Line: lineOf(data, name), Field: name, Msg: msg}
	}
	switch s.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, field("log_level", fmt.Sprintf("%q is not one of debug, info, warn, error", s.LogLevel))
	}
	if v := s.HealthInterval.Duration; v != 0 && v < 10*time.Second {
		return nil, field("health_interval", "below 10s")
	}
	if s.StoreQuota != 0 && s.StoreQuota < 1<<20 {
		return nil, field("store_quota", "below 1 MiB")
	}
	p := s.Profile
	if v := p.HeartbeatInterval.Duration; v != 0 && v < time.Second {
		return nil, field("profile.heartbeat_interval", "below 1s")
	}
	for _, o := range []struct {
		name string
		v    time.Duration
	}{{"profile.retry_base", p.RetryBase.Duration}, {"profile.retry_ceiling", p.RetryCeiling.Duration}} {
		if o.v != 0 && push {
			return nil, field(o.name, "may not change in flight: the DTN store's backoff is fixed when it opens; set it in the configuration file, for the next start")
		}
	}
	s.Profile.RetryBase, s.Profile.RetryCeiling = config.Duration{}, config.Duration{}
	return &s, nil
}

// lineOf finds the line where key is set (best effort: the first line
// starting with it); 0 if none.
func lineOf(data []byte, key string) int {
	short := key[strings.LastIndexByte(key, '.')+1:]
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), short) {
			return i + 1
		}
	}
	return 0
}
