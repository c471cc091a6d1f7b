// Command consumer is the Zoom provisioning consumer: it takes "create
// this Zoom user" requests from NATS JetStream, calls Zoom, and publishes
// one outcome per request.
//
//	consumer run        the service (configured by environment variables)
//	consumer sandbox    the service against an embedded NATS server and a Zoom simulator
//	consumer publish    publish one request, as an HRIS integrator would
//	consumer quota      show the shared quota state
//	consumer dlq        list, show, replay and purge dead letters
//	consumer user       what happened to one person; erase a person; rebuild the ledger
//	consumer reconcile  compare Zoom with the ledger, show the drift and its plan, publish it with --apply
//	consumer password   print the public key publishers seal passwords for
//	consumer config     check the settings and the connections
//	consumer completion print a bash or zsh completion script
//	consumer version    print the version
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
	"strings"
	"syscall"
)

// version and revision are set at build time with -ldflags
// "-X main.version=... -X main.revision=..." (deploy/Dockerfile does).
var (
	version  = "dev"
	revision = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// exitCode prints err as one line and maps it to the process exit code.
func exitCode(stderr io.Writer, err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(stderr, "consumer: "+ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintln(stderr, "consumer: "+err.Error())
		return 1
	}
}

// flagSets collects the flag set of a command run with -h, in place of
// its usage text: shell completion is generated from them, so it offers
// exactly the flags the commands parse. Writes are discarded.
type flagSets struct {
	sets []*flag.FlagSet
}

func (*flagSets) Write(p []byte) (int, error) { return len(p), nil }

// flagsOf returns the flags command path (such as "dlq", "ls") parses, as
// the command itself defines them before parsing its arguments.
func flagsOf(path ...string) []*flag.Flag {
	c := &flagSets{}
	_ = run(context.Background(), append(slices.Clone(path), "-h"), func(string) string { return "" }, strings.NewReader(""), io.Discard, c)
	var out []*flag.Flag
	for _, fs := range c.sets {
		fs.VisitAll(func(f *flag.Flag) { out = append(out, f) })
	}
	return out
}

// exitError carries a specific exit code; usage mistakes exit 2.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// commandInfo is a command of the CLI, for the usage text and shell
// completion; run dispatches them.
type commandInfo struct {
	name    string
	summary string
	// subs are the subcommands (consumer dlq ls, consumer config check).
	subs []commandInfo
	// args are the words the command takes after it (completion's shells).
	args []string
	// aliases are other names of the command.
	aliases []string
}

// commands lists every command, in the order of the usage text.
var commands = []commandInfo{
	{name: "run", summary: "run the provisioning service (configured by environment variables or flags)"},
	{name: "sandbox", summary: "run the service against an embedded NATS server and a Zoom simulator"},
	{name: "publish", summary: "publish one request and optionally wait for its result"},
	{name: "quota", summary: "show the quota gates, each replica's share of the budget, and the backlog per action", subs: []commandInfo{
		{name: "open", summary: "open a closed quota gate before its reset (audited)", args: []string{"create", "all"}},
	}},
	{name: "dlq", summary: "list, show, replay and purge dead letters", subs: []commandInfo{
		{name: "ls", aliases: []string{"list"}, summary: "list dead letters"},
		{name: "show", summary: "everything about one dead letter"},
		{name: "replay", summary: "republish dead letters to their request subject, then delete them"},
		{name: "purge", summary: "delete dead letters"},
	}},
	{name: "guard", summary: "the guard against mass deprovisioning: its state, and releasing or rejecting what it holds (audited)", subs: []commandInfo{
		{name: "status", summary: "the guard's state, window and held requests"},
		{name: "release", summary: "let every held deactivation and deletion go to Zoom"},
		{name: "reject", summary: "dead-letter every held deactivation and deletion without a Zoom call"},
	}},
	{name: "user", summary: "what happened to one person (the per-user ledger), erase a person, rebuild the ledger", subs: []commandInfo{
		{name: "show", summary: "one person's state, Zoom id and every finished request"},
		{name: "forget", summary: "erase one person: ledger entry, result events, dead letters (audited)"},
		{name: "reindex", summary: "rebuild the ledger from the result stream"},
	}},
	{name: "reconcile", summary: "compare every Zoom user with the ledger: the drift and its corrective requests (--apply publishes them)"},
	{name: "config", summary: "check the settings, NATS, the streams and Zoom's token without starting the service", subs: []commandInfo{
		{name: "check", summary: "check the settings and the connections, one line per check"},
	}},
	{name: "password", summary: "the public key publishers seal autoCreate passwords for", subs: []commandInfo{
		{name: "public-key", summary: "print the public key of the first PASSWORD_KEY_FILE key"},
	}},
	{name: "completion", summary: "print a shell completion script", args: []string{"bash", "zsh"}},
	{name: "version", summary: "print the version"},
}

// usage is what `consumer` alone and `consumer help` print.
var usage = func() string {
	var b strings.Builder
	b.WriteString("usage: consumer <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-10s  %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'consumer <command> -h' for a command's flags.")
	return b.String()
}()

// run is the whole program, with its environment passed in so tests can
// drive it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCommand(ctx, rest, getenv, stderr)
	case "sandbox":
		return sandboxCommand(ctx, rest, getenv, stdout, stderr)
	case "publish":
		return publishCommand(ctx, rest, getenv, stdin, stdout, stderr)
	case "quota":
		return quotaCommand(ctx, rest, getenv, stdout, stderr)
	case "dlq":
		return dlqCommand(ctx, rest, getenv, stdin, stdout, stderr)
	case "guard":
		return guardCommand(ctx, rest, getenv, stdout, stderr)
	case "user":
		return userCommand(ctx, rest, getenv, stdout, stderr)
	case "reconcile":
		return reconcileCommand(ctx, rest, getenv, stdout, stderr)
	case "config":
		return configCommand(ctx, rest, getenv, stdout, stderr)
	case "password":
		return passwordCommand(rest, getenv, stdout, stderr)
	case "completion":
		return completionCommand(rest, stdout, stderr)
	case "version":
		return versionCommand(rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		names := make([]string, len(commands))
		for i, c := range commands {
			names[i] = c.name
		}
		return usageError("unknown command %q (want %s or %s)", cmd, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
}

// newFlagSet returns a flag set that prints nothing itself: parse errors
// come back through flagError as one line, and -h prints the flags.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("consumer "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// flagError turns a parsing error into a one-line usage error (exit 2);
// for -h it prints the flags to stderr and returns flag.ErrHelp (exit 0).
// When stderr is a *flagSets, it collects fs instead of printing.
func flagError(fs *flag.FlagSet, stderr io.Writer, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, flag.ErrHelp) {
		if c, ok := stderr.(*flagSets); ok {
			c.sets = append(c.sets, fs)
			return err
		}
		fmt.Fprintf(stderr, "usage of %s:\n", fs.Name())
		if help, ok := helpPrinters[fs.Name()]; ok {
			help(stderr, fs)
			return err
		}
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		return err
	}
	var es *errSetting
	if errors.As(err, &es) {
		return &exitError{code: 2, msg: es.Error()}
	}
	return &exitError{code: 2, msg: fs.Name() + ": " + err.Error()}
}
