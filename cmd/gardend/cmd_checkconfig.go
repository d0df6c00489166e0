package main

import (
	"context"
	"errors"
	"fmt"

	"gardend/config"
	"gardend/plan"
)

func runCheckConfig(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "check-config", "FILE",
		"Validate a configuration file: syntax, unknown keys and every setting.\n"+
			"Each problem is printed as FILE:LINE: key: message. Files the\n"+
			"configuration names (PSK, plan, elements, PKCS#11 module) must exist unless\n"+
			"--offline is given, and elements files must hold one valid element set\n"+
			"(TLE or OMM). Exit status 0 when valid, 78 when not.")
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
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitConfig
	}
	fmt.Fprintf(e.stdout, "%s: ok (roles %v, profile %s)\n", fs.Arg(0), c.Roles, c.Profile.Kind)
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
