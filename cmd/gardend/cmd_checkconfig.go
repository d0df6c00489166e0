package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gardend/config"
	"gardend/plan"
)

func runCheckConfig(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "check-config", "FILE",
		"Validate a configuration file: syntax, unknown keys and every setting.\n"+
			"Each problem is printed as FILE:LINE: key: message. Files the\n"+
			"configuration names (PSK, plan, elements, PKCS#11 module) must exist unless\n"+
			"--offline is given, elements files must hold one valid element set\n"+
			"(TLE or OMM), and plan files must parse; with [[stations]], every window\n"+
			"of a plan file must name one of them. Exit status 0 when valid, 78 when not.")
	offline := fs.Bool("offline", false, "check the file alone, not the files it refers to (e.g. on another machine)")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(e, fs, "want exactly one FILE, got %d arguments", fs.NArg())
	}
	c, err := config.Load(fs.Arg(0))
	if err == nil {
		err = c.Validate()
	}
	if err == nil && !*offline {
		err = c.CheckFiles()
	}
	if err == nil && !*offline {
		err = checkElementsFiles(c)
	}
	if err == nil && !*offline {
		err = checkPlanFiles(c)
	}
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitConfig
	}
	stations := ""
	if len(c.Stations) > 0 {
		stations = ", stations " + strings.Join(c.StationNames(), " ")
		if c.Station != "" {
			stations += ", this process is " + c.Station
		}
	}
	fmt.Fprintf(e.stdout, "%s: ok (roles %v, profile %s%s)\n", fs.Arg(0), c.Roles, c.Profile.Kind, stations)
	return exitOK
}

// checkElementsFiles parses every elements file the configuration names,
// so a bad element set is found before the daemon starts.
func checkElementsFiles(c *config.Config) error {
	var errs []error
	files := []string{c.Profile.Elements()}
	for _, nn := range c.Nanos {
		files = append(files, nn.Elements())
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, err := plan.LoadOrbit(f); err != nil {
			errs = append(errs, fmt.Errorf("%s: elements file: %w", c.File(), err))
		}
	}
	return errors.Join(errs...)
}

// checkPlanFiles reads every plan file the configuration names, checking
// the stations its windows name against [[stations]].
func checkPlanFiles(c *config.Config) error {
	var errs []error
	files := []string{c.Profile.PlanFile}
	for _, nn := range c.Nanos {
		files = append(files, nn.PlanFile)
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		if _, err := c.Contacts(f, "", time.Now(), 0); err != nil {
			errs = append(errs, fmt.Errorf("%s: plan file: %w", c.File(), err))
		}
	}
	return errors.Join(errs...)
}
