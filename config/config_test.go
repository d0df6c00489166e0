package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const masterID = "12D3KooWJDioB5uqnoQaKeSiPCkVFABp46QwYxPgYxP2kygmVFL5"

func TestExampleFileIsValid(t *testing.T) {
	c, err := Load(filepath.Join("..", "gardend.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the documented example does not validate:\n%v", err)
	}
	// The example documents every field: its values are the defaults, apart
	// from the sample master it needs to be a valid nano config.
	d := Defaults()
	if c.DataDir != d.DataDir || c.Key != d.Key || c.Codec.MaxFrame != d.Codec.MaxFrame || c.Profile.Kind != d.Profile.Kind ||
		c.Profile.ElementsFile != d.Profile.ElementsFile || c.Profile.TLEFile != d.Profile.TLEFile || c.Metrics != d.Metrics {
		t.Fatalf("example drifted from Defaults(): %+v", c)
	}
}

func problems(t *testing.T, err error) *Problems {
	t.Helper()
	var p *Problems
	if !errors.As(err, &p) {
		t.Fatalf("want *Problems, got %T %v", err, err)
	}
	return p
}

func TestEveryErrorIsReportedWithItsLine(t *testing.T) {
	src := `name = "sat-1"
roles = ["nano", "relay"]
listen = ["/ip4/0.0.0.0/udp/4001"]
log_level = "loud"

[master]
peer_id = "not-a-peer"

[indexers]
seeds = ["/ip4/10.0.0.1/tcp/4001"]

[profile]
kind = "lunar"
`
	c, err := Parse("sat.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := problems(t, c.Validate())
	want := map[string]int{"roles": 2, "listen": 3, "log_level": 4, "master.peer_id": 7, "indexers.seeds": 10, "profile.kind": 13}
	got := map[string]int{}
	for _, it := range p.Items {
		got[it.Key] = it.Line
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("%s: reported at line %d, want %d (all: %v)", k, got[k], line, p.Error())
		}
	}
	if !strings.Contains(p.Error(), "sat.toml:13: profile.kind:") {
		t.Errorf("message lacks file:line: %s", p.Error())
	}
}

func TestSyntaxErrorsAndUnknownKeysHaveLines(t *testing.T) {
	_, err := Parse("a.toml", []byte("name = \"x\"\nroles = [\"nano\"\n"))
	if p := problems(t, err); p.Items[0].Line == 0 {
		t.Fatalf("syntax error without a line: %v", p)
	}
	_, err = Parse("b.toml", []byte("name = \"x\"\n\n[master]\npeerid = \"typo\"\n"))
	p := problems(t, err)
	if p.Items[0].Line != 4 || p.Items[0].Key != "master.peerid" {
		t.Fatalf("unknown key reported as %+v", p.Items[0])
	}
	_, err = Parse("c.toml", []byte("roles = 3\n"))
	if p := problems(t, err); p.Items[0].Line != 1 {
		t.Fatalf("type error reported as %+v", p.Items[0])
	}
}

func TestRoleRules(t *testing.T) {
	for _, tc := range []struct {
		roles []string
		ok    bool
	}{
		{[]string{"master", "indexer"}, true},
		{[]string{"indexer"}, true},
		{[]string{"nano"}, true},
		{[]string{"nano", "indexer"}, false},
		{[]string{"master", "master"}, false},
		{nil, false},
	} {
		c := Defaults()
		c.Roles = tc.roles
		c.Master.PeerID = masterID
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("roles %v: err = %v", tc.roles, err)
		}
	}
	c := Defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "master.peer_id") {
		t.Fatalf("a nano without a master must be refused, got %v", err)
	}
}

func TestKeyReferences(t *testing.T) {
	for key, ok := range map[string]bool{
		"/var/lib/gardend/identity.key": true,
		"file:/var/lib/gardend/id.key":  true,
		"pkcs11:token=gardend;object=identity?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234": true,
		"pkcs11:object=identity?module-path=/x.so":                                                        false, // no token
		"pkcs11:token=t;colour=blue?module-path=/x.so":                                                    false, // unknown attribute
		"pkcs11:token=t": false, // no module
		"tpm:whatever":   false,
		"":               false,
	} {
		c := Defaults()
		c.Roles = []string{"indexer"}
		c.Key = key
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("key %q: err = %v", key, err)
		}
	}
}

func TestFlagsOverrideTheFile(t *testing.T) {
	c, err := Parse("x.toml", []byte("roles = [\"nano\"]\nlog_level = \"info\"\n\n[master]\npeer_id = \""+masterID+"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o := BindFlags(fs)
	if err := fs.Parse([]string{"--roles", "master, indexer", "--log-level", "shout"}); err != nil {
		t.Fatal(err)
	}
	o.Apply(c)
	if strings.Join(c.Roles, ",") != "master,indexer" {
		t.Fatalf("roles = %v", c.Roles)
	}
	p := problems(t, c.Validate())
	if len(p.Items) != 1 || p.Items[0].Key != "log_level" || p.Items[0].Line != 0 {
		t.Fatalf("flag-set value reported as %+v", p.Items)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	c := Defaults()
	c.PSKFile = filepath.Join(dir, "missing.key")
	c.Key = filepath.Join(dir, "id.key")
	if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "psk_file") {
		t.Fatalf("missing PSK not reported: %v", err)
	}
	if err := os.WriteFile(c.PSKFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles(); err != nil {
		t.Fatal(err)
	}
}

func TestProfileRules(t *testing.T) {
	c := Defaults()
	c.Master.PeerID = masterID
	c.Profile.Kind = "orbital"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "needs a plan_file or an elements_file") {
		t.Fatalf("orbital without a plan: %v", err)
	}
	c.Profile.TLEFile = "/etc/gardend/sat.tle"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "profile.station") {
		t.Fatalf("TLE without a station: %v", err)
	}
	c.Profile.Station = "43.6,1.44,150"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Profile.MinElevation = 95
	if err := c.Validate(); err == nil {
		t.Fatal("95 degrees accepted")
	}
	if _, err := ParseStation("91,0,0"); err == nil {
		t.Fatal("latitude 91 accepted")
	}
}

func TestProfileTimings(t *testing.T) {
	c, err := Parse("t.toml", []byte("[profile]\nheartbeat_interval = \"2s\"\nguard = \"500ms\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Profile.HeartbeatInterval.Duration != 2*time.Second || c.Profile.Guard.Duration != 500*time.Millisecond {
		t.Fatalf("parsed %+v", c.Profile)
	}
	_, err = Parse("t.toml", []byte("\n[profile]\nguard = \"soon\"\n"))
	if p := problems(t, err); p.Items[0].Line != 3 || !strings.Contains(p.Error(), "not a duration") {
		t.Fatalf("bad duration: %v", err)
	}
}

func TestElementsFileAndItsOldName(t *testing.T) {
	base := "roles = [\"nano\"]\n[master]\npeer_id = \"" + masterID + "\"\n[profile]\nkind = \"orbital\"\nstation = \"43.6,1.44,150\"\n"
	for _, key := range []string{"elements_file", "tle_file"} {
		c, err := Parse("e.toml", []byte(base+key+" = \"/etc/gardend/sat.omm\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil || c.Profile.Elements() != "/etc/gardend/sat.omm" {
			t.Fatalf("%s: %v %q", key, err, c.Profile.Elements())
		}
		if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "e.toml:7: profile."+key) {
			t.Fatalf("%s: missing file reported as %v", key, err)
		}
	}
	c, err := Parse("e.toml", []byte(base+"elements_file = \"a\"\ntle_file = \"b\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := problems(t, c.Validate()); p.Items[0].Line != 8 || !strings.Contains(p.Error(), "old name of elements_file") {
		t.Fatalf("both names: %v", p)
	}
	c, err = Parse("n.toml", []byte("roles = [\"master\"]\n[profile]\nstation = \"43.6,1.44,150\"\n[[nanos]]\npeer_id = \""+masterID+"\"\ntle_file = \"/x.tle\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.Nanos[0].Elements() != "/x.tle" {
		t.Fatalf("[[nanos]] tle_file: %v", err)
	}
}

func TestMetricsListen(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9470", "[::1]:0", ":9470"} {
		c := Defaults()
		c.Master.PeerID = masterID
		c.Metrics.Listen = ok
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	c, err := Parse("m.toml", []byte("roles = [\"nano\"]\n[master]\npeer_id = \""+masterID+"\"\n[metrics]\nlisten = \"localhost\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := problems(t, c.Validate()); p.Items[0].Line != 5 || p.Items[0].Key != "metrics.listen" {
		t.Fatalf("bad listen: %v", p)
	}
}
