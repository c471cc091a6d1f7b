package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// consumer is one of the consumers compared.
type consumer struct {
	Name  string // service, watermill, naive
	Label string // for the table
	Bin   string
	Args  []string
	Env   []string // on top of the common environment
}

// process is a running consumer.
type process struct {
	name    string // the consumer's
	cmd     *exec.Cmd
	pid     int
	started time.Time
	log     *os.File
	exited  chan struct{}
	waitErr error // set before exited is closed
	keepLog bool
}

// startProcess starts c with env (a complete environment: nothing of the
// bench's own leaks in, GOGC in particular), its output going to a
// temporary log file.
func startProcess(c consumer, env []string, keepLog bool) (*process, error) {
	logf, err := os.CreateTemp("", "bench-"+c.Name+"-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Bin, c.Args...)
	cmd.Env = append(env, c.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p := &process{name: c.Name, cmd: cmd, log: logf, exited: make(chan struct{}), keepLog: keepLog}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.Remove(logf.Name())
		return nil, fmt.Errorf("start %s: %w", c.Bin, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It reports how the process ended.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.exitErr("exited early")
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitErr("exit after SIGTERM")
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("still running %v after SIGTERM; killed", grace)
	}
}

func (p *process) exitErr(what string) error {
	if p.waitErr != nil {
		return fmt.Errorf("%s: %w: %s", what, p.waitErr, p.tail())
	}
	return nil
}

// cleanup ends the process if it still runs and removes its log unless it
// is to be kept.
func (p *process) cleanup() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.log.Close()
	if p.keepLog {
		fmt.Fprintln(os.Stderr, "bench: log kept in", p.log.Name())
		return
	}
	os.Remove(p.log.Name())
}

// tail is the end of the process's output, for error messages.
func (p *process) tail() string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}
