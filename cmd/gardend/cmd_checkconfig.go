package main

import (
	"context"
	"fmt"

	"gardend/config"
)

func runCheckConfig(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "check-config", "FILE",
		"Validate a configuration file: syntax, unknown keys and every setting.\n"+
			"Each problem is printed as FILE:LINE: key: message. Files the\n"+
			"configuration names (PSK, plan, TLE, PKCS#11 module) must exist unless\n"+
			"--offline is given. Exit status 0 when valid, 78 when not.")
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
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitConfig
	}
	fmt.Fprintf(e.stdout, "%s: ok (roles %v, profile %s)\n", fs.Arg(0), c.Roles, c.Profile.Kind)
	return exitOK
}
