package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// versionCommand prints the version: one line of text, or with --json the
// build information as well.
func versionCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version")
	asJSON := fs.Bool("json", false, "print JSON: the version, Go and nats.go versions, and the build information (VCS revision, build settings, modules)")
	if err := fs.Parse(args); err != nil {
		return flagError(fs, stderr, err)
	}
	if fs.NArg() > 0 {
		return usageError("version: unexpected argument %q", fs.Arg(0))
	}
	if !*asJSON {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(buildVersion())
}

// versionString is what `consumer version` prints: the build's version,
// the Go toolchain, and the versions of the NATS client it was built with.
func versionString() string {
	v := buildVersion()
	s := fmt.Sprintf("consumer %s (%s, %s/%s)", v.Version, v.Go, v.OS, v.Arch)
	if v.NATSGo != "" {
		s += "\nnats.go " + v.NATSGo
	}
	return s
}

// versionInfo is `consumer version --json`.
type versionInfo struct {
	// Version is set at build time (-ldflags "-X main.version=...").
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
	// NATSGo is the nats.go module's version, "" if unknown.
	NATSGo string `json:"nats_go"`
	// Revision is the source revision: stamped with -ldflags (the
	// container's build argument REVISION), else the VCS revision the Go
	// toolchain recorded, else "".
	Revision string `json:"revision,omitempty"`
	// Module and ModuleVersion are the main module's path and version
	// ("(devel)" for a build from a work tree).
	Module        string `json:"module,omitempty"`
	ModuleVersion string `json:"module_version,omitempty"`
	// VCS is what the Go toolchain stamped: revision, commit time, whether
	// the work tree was modified. Builds with -buildvcs=false (as the
	// container's) have none.
	VCS *vcsInfo `json:"vcs,omitempty"`
	// Settings are the build settings (tags, -trimpath, CGO_ENABLED,
	// GOARCH, ...), as runtime/debug reports them.
	Settings map[string]string `json:"build_settings"`
	// Deps are the modules linked in.
	Deps []moduleInfo `json:"deps"`
}

type vcsInfo struct {
	System   string `json:"system"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified"`
}

type moduleInfo struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	// Replace is the module replacing this one, if any.
	Replace string `json:"replace,omitempty"`
}

func buildVersion() versionInfo {
	v := versionInfo{
		Version: version, Revision: revision, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Settings: map[string]string{}, Deps: []moduleInfo{},
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.ModuleVersion = bi.Main.Path, bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs":
			v.vcs().System = s.Value
		case "vcs.revision":
			v.vcs().Revision = s.Value
		case "vcs.time":
			v.vcs().Time = s.Value
		case "vcs.modified":
			v.vcs().Modified = s.Value == "true"
		default:
			v.Settings[s.Key] = s.Value
		}
	}
	v.Revision = revision
	if v.Revision == "" && v.VCS != nil {
		v.Revision = v.VCS.Revision
	}
	for _, d := range bi.Deps {
		m := moduleInfo{Path: d.Path, Version: d.Version}
		if d.Replace != nil {
			m.Replace = d.Replace.Path + " " + d.Replace.Version
		}
		v.Deps = append(v.Deps, m)
		if d.Path == "github.com/nats-io/nats.go" {
			v.NATSGo = d.Version
		}
	}
	return v
}

func (v *versionInfo) vcs() *vcsInfo {
	if v.VCS == nil {
		v.VCS = &vcsInfo{}
	}
	return v.VCS
}
