// Package testenv is a reusable environment for running the provisioning
// consumer without any outside service: an embedded NATS JetStream server and
// a Zoom API simulator that behaves as Zoom documents it.
//
// The package is used by this project's tests and by `consumer sandbox`;
// downstream teams that build on the result and dead-letter streams can use
// it in their own tests. It needs no *testing.T, so non-test code can use it.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
