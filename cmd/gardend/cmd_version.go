package main

import (
	"context"
	"fmt"
	"runtime"

	"gardend/hsm"
)

func runVersion(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "version", "", "Print the version, the commit it was built from, the Go version and\nthe build flavour: \"static\" (software keystore, no cgo) or \"pkcs11\"\n(can use a hardware token).")
	if code, ok := parseFlags(e, fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return usageError(e, fs, "unexpected argument %q", fs.Arg(0))
	}
	built := buildDate
	if built == "" {
		built = "unknown"
	}
	fmt.Fprintf(e.stdout, "gardend %s\ncommit: %s\nbuilt: %s\ngo: %s %s/%s\nflavour: %s\n",
		version, commit, built, runtime.Version(), runtime.GOOS, runtime.GOARCH, hsm.Flavour)
	return exitOK
}
