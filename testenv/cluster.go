package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NATSServerBinary returns the path of a nats-server binary: $NATS_SERVER_BIN
// if set, else one built from the nats-server module this module depends on
// (so its version is the embedded server's), cached in the temporary
// directory across runs. Building needs the go command, which every test
// run has.
func NATSServerBinary() (string, error) {
	if bin := os.Getenv("NATS_SERVER_BIN"); bin != "" {
		return bin, nil
	}
	version := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats-server/v2" {
				version = d.Version
			}
		}
	}
	dir := filepath.Join(os.TempDir(), "zoomprov-nats-server-"+version)
	bin := filepath.Join(dir, "nats-server")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	// Build into a name of our own and rename: test packages build in
	// parallel, and a rename never leaves a half-written binary in place.
	tmp := fmt.Sprintf("%s.%d", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "github.com/nats-io/nats-server/v2")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: build nats-server: %v: %s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	return bin, nil
}

// ClusterNode is one nats-server process of a Cluster. Its ports and store
// stay the same across restarts.
type ClusterNode struct {
	// Name is the node's server name (n1, n2, …), as JetStream reports
	// leaders.
	Name                   string
	port, clusterPort, mon int
	dir, conf              string
	bin                    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a JetStream cluster of nats-server processes on loopback, for
// tests of leader failover: nodes can be killed (SIGKILL) and restarted on
// the same store.
type Cluster struct {
	Nodes []*ClusterNode
	dir   string
}

// Dir is the directory that holds every node's store.
func (c *Cluster) Dir() string { return c.dir }

// StartCluster starts size nats-server processes joined in one JetStream
// cluster and waits until JetStream has a meta leader. Shutdown stops them
// and removes their stores.
func StartCluster(size int) (*Cluster, error) {
	var err error
	for range 3 {
		var c *Cluster
		if c, err = startCluster(size); !errors.Is(err, errPortTaken) {
			return c, err
		}
	}
	return nil, err
}

// errExited reports a node that exited before it answered its health
// check.
var errExited = errors.New("testenv: exited at start")

// errPortTaken reports a node that exited at once, most likely because
// another process took one of its ports between freePort and the bind
// (tests of several packages run at once): StartCluster tries new ports.
var errPortTaken = errors.New("testenv: a node exited at start (a port taken?)")

func startCluster(size int) (*Cluster, error) {
	bin, err := NATSServerBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "zoomprov-cluster-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	c := &Cluster{dir: dir}
	ports := make([]int, 0, 3*size)
	for range 3 * size {
		p, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		ports = append(ports, p)
	}
	// A name of its own: tests of several packages start clusters at
	// once, and a node's routes, retried while a killed peer is down, can
	// reach a port another package's cluster has taken since. Servers
	// refuse a route from another cluster's name rather than merge.
	name := filepath.Base(dir)
	var routes []string
	for i := range size {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3*i+1]))
	}
	for i := range size {
		n := &ClusterNode{
			Name: fmt.Sprintf("n%d", i+1), port: ports[3*i], clusterPort: ports[3*i+1], mon: ports[3*i+2],
			dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), bin: bin,
		}
		n.conf = filepath.Join(n.dir, "server.conf")
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("testenv: %w", err)
		}
		text := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  max_memory_store: 268435456
  max_file_store: 1073741824
}
cluster {
  name: %s
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.Name, n.port, n.mon, n.dir, name, n.clusterPort, strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(text), 0o600); err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("testenv: %w", err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			c.Shutdown()
			if errors.Is(err, errExited) {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return nil, err
		}
	}
	// Generous: at the start of `go test ./...` the machine also builds
	// and runs every other package's tests.
	if err := c.WaitHealthy(90 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// WaitHealthy polls until every running node answers its health check
// (JetStream current with the meta leader) and a meta leader is known.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		healthy := c.MetaLeader() != ""
		for _, n := range c.Nodes {
			if healthy && n.Running() && !n.healthy() {
				healthy = false
			}
		}
		if healthy {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: cluster not healthy after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling for the election
	}
}

func (n *ClusterNode) healthy() bool {
	cl := http.Client{Timeout: time.Second}
	res, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.mon))
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// URLs is the comma-separated client URLs of every node, as NATS_URL takes
// them.
func (c *Cluster) URLs() string {
	var urls []string
	for _, n := range c.Nodes {
		urls = append(urls, n.URL())
	}
	return strings.Join(urls, ",")
}

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Shutdown stops every node and removes the stores.
func (c *Cluster) Shutdown() {
	for _, n := range c.Nodes {
		n.Stop()
	}
	os.RemoveAll(c.dir)
}

// jsz is the part of a node's /jsz monitoring answer the helpers read.
type jsz struct {
	Meta *struct {
		Leader string `json:"leader"`
	} `json:"meta_cluster"`
	Accounts []struct {
		Streams []struct {
			Name    string `json:"name"`
			Cluster *struct {
				Leader string `json:"leader"`
			} `json:"cluster"`
		} `json:"stream_detail"`
	} `json:"account_details"`
}

func (n *ClusterNode) jsz() (jsz, error) {
	var out jsz
	cl := http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz?accounts=true&streams=true", n.mon))
	if err != nil {
		return out, err
	}
	defer res.Body.Close()
	return out, json.NewDecoder(res.Body).Decode(&out)
}

// MetaLeader returns the name of JetStream's meta leader as a running node
// reports it ("" when none is known).
func (c *Cluster) MetaLeader() string {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		if j, err := n.jsz(); err == nil && j.Meta != nil && j.Meta.Leader != "" {
			return j.Meta.Leader
		}
	}
	return ""
}

// StreamLeader returns the name of the node leading stream ("" when none is
// known).
func (c *Cluster) StreamLeader(stream string) string {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		j, err := n.jsz()
		if err != nil {
			continue
		}
		for _, a := range j.Accounts {
			for _, s := range a.Streams {
				if s.Name == stream && s.Cluster != nil && s.Cluster.Leader != "" {
					return s.Cluster.Leader
				}
			}
		}
	}
	return ""
}

// WaitMetaLeader polls until the cluster has a meta leader.
func (c *Cluster) WaitMetaLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for c.MetaLeader() == "" {
		if time.Now().After(deadline) {
			return fmt.Errorf("testenv: no JetStream meta leader after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond) // polling for the election
	}
	return nil
}

// URL is the node's client URL.
func (n *ClusterNode) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// Running reports whether the node's process runs.
func (n *ClusterNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Start starts the node's process (again) and waits until it accepts
// client connections.
func (n *ClusterNode) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return errors.New("testenv: node " + n.Name + " already running")
	}
	cmd := exec.Command(n.bin, "-c", n.conf)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	n.cmd, n.done = cmd, done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		cl := http.Client{Timeout: 200 * time.Millisecond}
		if res, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", n.mon)); err == nil {
			res.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-done
			n.cmd = nil
			return fmt.Errorf("testenv: node %s not up after 10s", n.Name)
		case <-done:
			n.cmd = nil
			return fmt.Errorf("%w: node %s", errExited, n.Name)
		case <-time.After(20 * time.Millisecond): // polling for the listener
		}
	}
}

// Kill ends the node's process with SIGKILL: no flush, no clean shutdown.
func (n *ClusterNode) Kill() { n.stop(syscall.SIGKILL) }

// Stop ends the node's process with SIGTERM and waits for it.
func (n *ClusterNode) Stop() { n.stop(syscall.SIGTERM) }

func (n *ClusterNode) stop(sig syscall.Signal) {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	<-done
}
