package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionString is what `consumer version` prints: the build's version,
// the Go toolchain, and the versions of the NATS client it was built with.
func versionString() string {
	s := fmt.Sprintf("consumer %s (%s, %s/%s)", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats.go" {
				s += "\nnats.go " + d.Version
			}
		}
	}
	return s
}
