package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// NATSProcess is a nats-server running as a separate process, for tests
// that must kill the broker for real (SIGKILL, not a clean shutdown) or run
// against another server version than the embedded one (for example
// Debian's nats-server 2.9, which has no consumer pause API).
type NATSProcess struct {
	bin      string
	dir      string
	port     int
	ownStore bool
	extra    string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartNATSProcess starts bin (a nats-server binary) with JetStream on a
// free loopback port and storeDir (empty: a new temporary directory), with
// the same memory and disk limits as StartNATS, and waits until it accepts
// connections.
func StartNATSProcess(bin, storeDir string) (*NATSProcess, error) {
	return StartNATSProcessWithConfig(bin, storeDir, "")
}

// StartNATSProcessWithConfig is StartNATSProcess with extra appended to
// the server's configuration file: accounts, users and permissions, a
// log_file, and the like. The process's configuration file is
// server.conf in the store directory.
func StartNATSProcessWithConfig(bin, storeDir, extra string) (*NATSProcess, error) {
	p := &NATSProcess{bin: bin, dir: storeDir, extra: extra}
	if p.dir == "" {
		dir, err := os.MkdirTemp("", "zoomprov-natsproc-")
		if err != nil {
			return nil, fmt.Errorf("testenv: create store dir: %w", err)
		}
		p.dir, p.ownStore = dir, true
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = port
	if err := p.Start(); err != nil {
		if p.ownStore {
			os.RemoveAll(p.dir)
		}
		return nil, err
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is the client URL; it stays the same across restarts.
func (p *NATSProcess) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(p.port) }

// StoreDir is the JetStream store directory.
func (p *NATSProcess) StoreDir() string { return p.dir }

// Start starts the process (again) on the same port and store.
func (p *NATSProcess) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return errors.New("testenv: nats-server process already running")
	}
	conf := filepath.Join(p.dir, "server.conf")
	text := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  max_memory_store: 268435456\n  max_file_store: 1073741824\n}\n", p.port, p.dir) + p.extra
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return fmt.Errorf("testenv: write server config: %w", err)
	}
	cmd := exec.Command(p.bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start %s: %w", p.bin, err)
	}
	p.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			p.cmd = nil
			return fmt.Errorf("testenv: %s not accepting connections after 10s", p.bin)
		}
		time.Sleep(20 * time.Millisecond) // polling for the listener
	}
}

// Kill ends the process with SIGKILL: no flush, no clean shutdown.
func (p *NATSProcess) Kill() { p.stop(syscall.SIGKILL) }

// Stop ends the process with SIGTERM and waits for it.
func (p *NATSProcess) Stop() { p.stop(syscall.SIGTERM) }

func (p *NATSProcess) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Wait()
}

// Restart stops the process (SIGTERM) and starts it again.
func (p *NATSProcess) Restart() error {
	p.Stop()
	return p.Start()
}

// Shutdown stops the process and removes the store if this created it.
func (p *NATSProcess) Shutdown() {
	p.Stop()
	if p.ownStore {
		os.RemoveAll(p.dir)
	}
}
