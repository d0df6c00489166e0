// Command gardend is the one binary of the gardend network: the on-board nano,
// the ground master and the indexer, plus the tools to set them up and look
// inside them. main only hands the arguments to run; each subcommand lives in
// its own file and reads nothing but its flags, its config and the
// environment it is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"syscall"
)

// Set at link time: -ldflags "-X main.version=... -X main.commit=...".
var (
	version   = "dev"
	commit    = "unknown"
	buildDate = "" // RFC 3339; the clock check treats earlier wall clocks as unset
)

// Exit codes. Scripts and systemd units rely on them; never renumber.
const (
	exitOK      = 0
	exitFailure = 1  // the command ran and failed
	exitUsage   = 2  // bad subcommand, flag or argument
	exitConfig  = 78 // EX_CONFIG: the configuration is invalid (systemd: RestartPreventExitStatus=78)
)

// env is what a subcommand may touch of the outside world.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	// run parses args (without the subcommand name) and does the work.
	run func(ctx context.Context, e *env, args []string) int
}

func commands() []command {
	return slices.Concat([]command{
		{"run", "run the configured roles (nano, master, indexer)", runRun},
	}, demoCommand(), []command{
		{"status", "ask the running daemon for its state", runStatus},
		{"resource", "change or list the running daemon's catalogue (put, ls)", runResource},
		{"reload", "ask a running daemon to reload (SIGHUP; the unit's ExecReload)", runReload},
		{"version", "print version, commit, Go version and build flavour", runVersion},
		{"check-config", "validate a configuration file, reporting each error with its line", runCheckConfig},
		{"keygen", "create the node identity and storage key if missing; print the peer ID", runKeygen},
		{"id", "print the peer ID and public key of the node identity", runID},
		{"fleet", "the ground's view of its nanos: ls, show, push elements, plans and settings", runFleet},
		{"dtn", "inspect the DTN store (stats, ls)", runDTN},
		{"plan", "predict passes from orbit elements (TLE or OMM) and print a contact plan", runPlan},
		{"help", "show help for gardend or one subcommand", nil}, // handled by run
	})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if c, ok := findCommand(rest[0]); ok && c.run != nil {
				return c.run(ctx, e, []string{"--help"})
			}
			fmt.Fprintf(e.stderr, "gardend: no such command %q\n\n", rest[0])
			usage(e.stderr)
			return exitUsage
		}
		usage(e.stdout)
		return exitOK
	}
	c, ok := findCommand(name)
	if !ok || c.run == nil {
		fmt.Fprintf(e.stderr, "gardend: unknown command %q\n\n", name)
		usage(e.stderr)
		return exitUsage
	}
	return c.run(ctx, e, rest)
}

func findCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "gardend — delay-tolerant P2P node (nano, master, indexer)\n\nUsage:\n  gardend <command> [flags] [args]\n\nCommands:\n")
	cs := commands()
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'gardend <command> --help' for a command's flags.\n"+
		"Exit codes: 0 ok, 1 failure, 2 usage error, 78 invalid configuration.\n")
}

// newFlagSet returns a flag set whose --help prints to stdout and whose errors
// print to stderr; parse turns the outcome into an exit code.
func newFlagSet(e *env, name, argsUsage, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: gardend %s [flags] %s\n\n%s\n", name, argsUsage, about)
		if hasFlags(fs) {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parseFlags parses args; ok is false when the caller must return code.
func parseFlags(e *env, fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(e.stdout)
		fs.Usage()
		return exitOK, false
	default:
		fmt.Fprintf(e.stderr, "gardend %s: %v\n\n", fs.Name(), err)
		fs.SetOutput(e.stderr)
		fs.Usage()
		return exitUsage, false
	}
}

// parseAction parses "ACTION [flags]" as well as "[flags] ACTION": flags
// may come before or after the action word (gardend dtn stats --config F).
func parseAction(e *env, fs *flag.FlagSet, args []string) (action string, code int, ok bool) {
	if code, ok := parseFlags(e, fs, args); !ok {
		return "", code, false
	}
	action = fs.Arg(0)
	if fs.NArg() > 1 {
		if code, ok := parseFlags(e, fs, fs.Args()[1:]); !ok {
			return "", code, false
		}
		if fs.NArg() > 0 {
			return "", usageError(e, fs, "unexpected argument %q", fs.Arg(0)), false
		}
	}
	return action, exitOK, true
}

// usageError reports a bad argument the flag package cannot see.
func usageError(e *env, fs *flag.FlagSet, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "gardend %s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.SetOutput(e.stderr)
	fs.Usage()
	return exitUsage
}
