// Command syncworker runs the relay and the subscriber workers and holds the operator's
// tools: migrate, topology, status, dlq, verify, health, demo and bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. Each lives in a file of its own and registers itself in init.
type command struct {
	name    string // may contain a space for nested commands, for example "outbox dead"
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("syncworker: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// cliEnv is what a command may touch of the outside world, so tests can run commands
// in-process and read their output.
type cliEnv struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	getenv         func(string) string
}

// errUsage marks a bad command line (exit code 2). Itself it says the flag package already
// explained the problem; usageErrorf wraps it with an explanation of its own.
var errUsage = errors.New("usage error")

// usageError is a bad command line explained by its message; errors.Is(err, errUsage) holds.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == errUsage }

// usageErrorf reports a bad command line, naming the flag or argument at fault.
func usageErrorf(format string, args ...any) error {
	return usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, getenv: os.Getenv}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run dispatches args to the longest matching command name and returns the exit code.
func run(ctx context.Context, env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.stdout)
		return 0
	}
	for n := min(len(args), 3); n >= 1; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			err := c.run(ctx, env, args[n:])
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				if err.Error() != errUsage.Error() {
					fmt.Fprintf(env.stderr, "syncworker %s: %v\nRun 'syncworker %s --help' for its usage.\n", c.name, err, c.name)
				}
				return 2
			default:
				fmt.Fprintf(env.stderr, "syncworker %s: %v\n", c.name, err)
				var ex exitCoder
				if errors.As(err, &ex) {
					return ex.ExitCode()
				}
				return 1
			}
		}
	}
	if prefix, rest, ok := commandGroup(args); ok {
		switch {
		case len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help"):
			groupUsage(env.stdout, prefix)
			return 0
		case len(rest) == 0:
			fmt.Fprintf(env.stderr, "syncworker %s: which one?\n\n", prefix)
		default:
			fmt.Fprintf(env.stderr, "syncworker %s: unknown command %q\n\n", prefix, rest[0])
		}
		groupUsage(env.stderr, prefix)
		return 2
	}
	fmt.Fprintf(env.stderr, "syncworker: unknown command %q\n\n", strings.Join(args, " "))
	usage(env.stderr)
	return 2
}

// commandGroup finds the longest leading words of args that name a group of commands
// ("topology", "outbox dead", "outbox"), and returns the arguments after them.
func commandGroup(args []string) (prefix string, rest []string, ok bool) {
	for n := min(len(args), 2); n >= 1; n-- {
		prefix = strings.Join(args[:n], " ")
		for name := range commands {
			if strings.HasPrefix(name, prefix+" ") {
				return prefix, args[n:], true
			}
		}
	}
	return "", nil, false
}

// exitCoder lets a command choose its exit code, for example verify on drift.
type exitCoder interface{ ExitCode() int }

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: syncworker COMMAND [flags]\n\nCommands:")
	listCommands(w, "")
	fmt.Fprintln(w, "\nRun 'syncworker COMMAND --help' for the flags of a command.")
}

// groupUsage lists the commands of a group, such as "topology".
func groupUsage(w io.Writer, prefix string) {
	fmt.Fprintf(w, "Usage: syncworker %s COMMAND [flags]\n\nCommands:\n", prefix)
	listCommands(w, prefix+" ")
	fmt.Fprintln(w, "\nRun 'syncworker COMMAND --help' for the flags of a command.")
}

// listCommands prints the commands whose names start with prefix, sorted, with their summaries.
func listCommands(w io.Writer, prefix string) {
	var names []string
	for name := range commands {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-22s %s\n", name, commands[name].summary)
	}
}

// newFlagSet returns a flag set that reports errors to env.stderr and returns them instead
// of exiting, with a usage line naming the command.
func newFlagSet(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: %s\n", strings.TrimSpace("syncworker "+name+" "+synopsis))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(env.stderr, "\nFlags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args of a command that takes no positional arguments: a stray one is a
// usage error rather than something silently ignored.
func parseFlags(fs *flag.FlagSet, args []string) error {
	positional, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usageErrorf("unexpected argument %q: %s takes no arguments besides its flags", positional[0], fs.Name())
	}
	return nil
}

// parseArgs parses flags and positional arguments in any order and returns the positional
// ones: the flag package alone stops at the first positional argument, which would make
// `outbox dead purge 6 --yes` treat --yes as an id. Everything after "--" is positional. A
// bad flag is errUsage (the flag package reported it).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
}
