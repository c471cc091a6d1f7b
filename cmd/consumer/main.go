// Command consumer is the Zoom provisioning consumer: it takes "create
// this Zoom user" requests from NATS JetStream, calls Zoom, and publishes
// one outcome per request.
//
//	consumer run        the service (configured by environment variables)
//	consumer sandbox    the service against an embedded NATS server and a Zoom simulator
//	consumer publish    publish one request, as an HRIS integrator would
//	consumer quota      show the shared quota state
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
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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

// exitError carries a specific exit code; usage mistakes exit 2.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

const usage = `usage: consumer <command> [flags]

commands:
  run       run the provisioning service (configured by environment variables or flags)
  sandbox   run the service against an embedded NATS server and a Zoom simulator
  publish   publish one create-user request
  quota     show the quota gates, each replica's share of the budget, and the backlog per action
  dlq       list, show, replay and purge dead letters
  version   print the version

Run 'consumer <command> -h' for a command's flags.`

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
	case "version":
		return versionCommand(rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return usageError("unknown command %q (want run, sandbox, publish, quota, dlq or version)", cmd)
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
func flagError(fs *flag.FlagSet, stderr io.Writer, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "usage of %s:\n", fs.Name())
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
