//go:build nosandbox

package main

import (
	"context"
	"io"
)

// noSandboxMsg is all a production build says to `consumer sandbox`.
const noSandboxMsg = "sandbox is not in this build; use go run ./cmd/consumer sandbox"

// sandboxCommand stands in for the sandbox in a build with -tags nosandbox,
// which leaves out the embedded NATS server and the Zoom simulator.
func sandboxCommand(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
	return &exitError{code: 2, msg: noSandboxMsg}
}
