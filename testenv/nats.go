// Package testenv is a reusable environment for running the provisioning
// consumer without any outside service: an embedded NATS JetStream server and
// a Zoom API simulator that behaves as Zoom documents it.
//
// The package is used by this project's tests and by `consumer sandbox`;
// downstream teams that build on the result and dead-letter streams can use
// it in their own tests. It needs no *testing.T, so non-test code can use it.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSOptions configures an embedded JetStream server. Zero values mean the
// documented defaults.
type NATSOptions struct {
	// StoreDir is the JetStream store directory. Empty means a new temporary
	// directory, removed by Shutdown.
	StoreDir string
	// Host is the listen address; empty means 127.0.0.1.
	Host string
	// Port is the client port; 0 means a random free port. A restart keeps
	// the port it first got, so clients reconnect to the same URL.
	Port int
	// MaxMemory and MaxStore bound JetStream's memory and disk use in bytes.
	// Zero means 256 MiB and 1 GiB: without limits the server would claim
	// three quarters of the machine's memory and disk.
	MaxMemory, MaxStore int64
	// Logging sends the server's own log to stderr (debugging aid).
	Logging bool
}

// NATS is an embedded nats-server with JetStream enabled. Its methods are
// safe for concurrent use.
type NATS struct {
	opts     NATSOptions
	ownStore bool

	mu  sync.Mutex
	srv *server.Server
}

// StartNATS starts an embedded JetStream server and waits until it accepts
// connections.
func StartNATS(opts NATSOptions) (*NATS, error) {
	n := &NATS{opts: opts}
	if n.opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "zoomprov-js-")
		if err != nil {
			return nil, fmt.Errorf("testenv: create store dir: %w", err)
		}
		n.opts.StoreDir = dir
		n.ownStore = true
	}
	if n.opts.Host == "" {
		n.opts.Host = "127.0.0.1"
	}
	if n.opts.MaxMemory == 0 {
		n.opts.MaxMemory = 256 << 20
	}
	if n.opts.MaxStore == 0 {
		n.opts.MaxStore = 1 << 30
	}
	if err := n.start(); err != nil {
		if n.ownStore {
			os.RemoveAll(n.opts.StoreDir)
		}
		return nil, err
	}
	return n, nil
}

func (n *NATS) start() error {
	port := n.opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	so := &server.Options{
		Host:                   n.opts.Host,
		Port:                   port,
		JetStream:              true,
		StoreDir:               n.opts.StoreDir,
		JetStreamMaxMemory:     n.opts.MaxMemory,
		JetStreamMaxStore:      n.opts.MaxStore,
		NoSigs:                 true,
		NoLog:                  !n.opts.Logging,
		DisableJetStreamBanner: true,
		// Tests publish bursts of thousands of messages; the default
		// 1 MiB max payload is fine, but make the write deadline generous
		// so a busy two-core machine does not drop slow test clients.
		WriteDeadline: 10 * time.Second,
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return fmt.Errorf("testenv: new nats server: %w", err)
	}
	if n.opts.Logging {
		srv.ConfigureLogger()
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errors.New("testenv: nats server not ready after 10s")
	}
	// Remember the port so a restart serves the same URL.
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		n.opts.Port = addr.Port
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	return nil
}

// URL is the client URL, e.g. nats://127.0.0.1:40123. It stays the same
// across Restart.
func (n *NATS) URL() string {
	return "nats://" + net.JoinHostPort(n.opts.Host, strconv.Itoa(n.opts.Port))
}

// StoreDir is the JetStream store directory.
func (n *NATS) StoreDir() string { return n.opts.StoreDir }

// Server returns the running server, or nil while it is stopped.
func (n *NATS) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Stop shuts the server down but keeps its store, so Start can bring it back
// with everything it had (a broker outage).
func (n *NATS) Stop() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Start starts a stopped server again on the same port and store.
func (n *NATS) Start() error {
	if n.Server() != nil {
		return errors.New("testenv: nats server already running")
	}
	return n.start()
}

// Restart stops the server and starts it again on the same port and store.
func (n *NATS) Restart() error {
	n.Stop()
	return n.start()
}

// Shutdown stops the server and removes the store directory if StartNATS
// created it.
func (n *NATS) Shutdown() {
	n.Stop()
	if n.ownStore {
		os.RemoveAll(n.opts.StoreDir)
	}
}

// StreamFiles returns the bytes of every file a file-storage stream keeps
// under storeDir (a server's StoreDir, any account), concatenated: what a
// backup of the store, or someone reading the disk, would see.
func StreamFiles(storeDir, stream string) ([]byte, error) {
	var out []byte
	err := filepath.WalkDir(storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !slices.Contains(strings.Split(filepath.ToSlash(path), "/"), stream) {
			return nil
		}
		b, err := os.ReadFile(path)
		out = append(out, b...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: read the files of stream %s: %w", stream, err)
	}
	return out, nil
}

// StreamBytes returns every message a stream holds, as the server returns
// it (headers, then data), concatenated: for tests that search a stream
// for what must not be in it.
func StreamBytes(ctx context.Context, js jetstream.JetStream, stream string) ([]byte, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("testenv: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("testenv: stream %s: %w", stream, err)
	}
	var out []byte
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("testenv: stream %s message %d: %w", stream, seq, err)
		}
		for k, vs := range m.Header {
			out = append(out, k+": "+strings.Join(vs, ",")+"\n"...)
		}
		out = append(out, m.Data...)
	}
	return out, nil
}

// StartJetStream starts an embedded server for a test, with a store in the
// test's temporary directory, and returns a JetStream client connected to
// it (js.Conn() is the connection). Both end with the test.
func StartJetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	ns, err := StartNATS(NATSOptions{StoreDir: tb.TempDir()})
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		tb.Fatalf("connect to nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}
