package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. Linux fixes it
// at 100 for user space whatever the kernel's tick rate.
const userHZ = 100

// cpuSeconds is the user plus system CPU time of process pid (all its
// threads) so far, from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the contents
// of /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from its closing parenthesis.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, errors.New("proc stat: too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return float64(ut+st) / userHZ, nil
}

// peakRSS is process pid's peak resident set (VmHWM) in bytes. It must be
// read while the process runs: the ru_maxrss that wait4 reports for a Go
// child is not its own (Go starts children with CLONE_VM, and Linux counts
// the memory of the process that exec replaced into the maximum).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

func parseVmHWM(status []byte) (int64, error) { return parseStatusKB(status, "VmHWM") }

// currentRSS is process pid's resident set now (VmRSS) in bytes.
func currentRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, "VmRSS")
}

// parseStatusKB reads the field key, in kB, of the contents of
// /proc/<pid>/status, in bytes.
func parseStatusKB(status []byte, key string) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("proc status: %s: %w", key, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("proc status: no %s", key)
}

// pidWithArg finds the process one of whose arguments is arg (the broker:
// testenv.NATSProcess does not expose its process, but its config file
// path, inside a fresh temporary directory, is unique).
func pidWithArg(arg string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		for a := range bytes.SplitSeq(b, []byte{0}) {
			if string(a) == arg {
				return strconv.Atoi(filepath.Base(d))
			}
		}
	}
	return 0, fmt.Errorf("no process with argument %q", arg)
}

// loadAvg is the first line of /proc/loadavg (1, 5 and 15 minute load).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// machineBusy is the CPU seconds all CPUs have spent in processes since
// boot (user, nice, system, steal), from /proc/stat. Interrupt time is
// left out: the kernel's loopback networking for the measured processes
// runs there and is charged to no process.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStatBusy(b)
}

func parseProcStatBusy(stat []byte) (float64, error) {
	line, _, _ := bytes.Cut(stat, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("proc stat: no cpu line")
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal.
	for _, i := range []int{1, 2, 3, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: %w", err)
		}
		busy += v
	}
	return float64(busy) / userHZ, nil
}

// cpuMeter measures over an interval the CPU of the consumer, of the
// broker, and of everything else on the machine apart from this process
// (other people's work, which would disturb the measurement).
type cpuMeter struct {
	broker, self, machine float64
	brokerPID             int
}

func startCPUMeter(brokerPID int) (cpuMeter, error) {
	m := cpuMeter{brokerPID: brokerPID}
	var err1, err2, err3 error
	m.broker, err1 = cpuSeconds(brokerPID)
	m.self, err2 = cpuSeconds(os.Getpid())
	m.machine, err3 = machineBusy()
	return m, errors.Join(err1, err2, err3)
}

// stop returns the CPU seconds since start of the consumer (whole life:
// it started after the meter), of the broker, and of all other processes.
func (m cpuMeter) stop(consumerPID int) (consumer, broker, others float64, err error) {
	cs, broker, _, others, err := m.stopAll(consumerPID)
	if err != nil {
		return 0, 0, 0, err
	}
	return cs[0], broker, others, nil
}

// stopAll is stop for several consumers: the CPU seconds of each (whole
// life), of the broker and of this process (the bench: the simulator, the
// counting of results) since start, and of all other processes.
func (m cpuMeter) stopAll(consumerPIDs ...int) (consumers []float64, broker, self, others float64, err error) {
	var errs []error
	var sum float64
	for _, pid := range consumerPIDs {
		c, err := cpuSeconds(pid)
		errs = append(errs, err)
		consumers = append(consumers, c)
		sum += c
	}
	b, err2 := cpuSeconds(m.brokerPID)
	s, err3 := cpuSeconds(os.Getpid())
	t, err4 := machineBusy()
	if err := errors.Join(append(errs, err2, err3, err4)...); err != nil {
		return nil, 0, 0, 0, err
	}
	broker, self = b-m.broker, s-m.self
	others = (t - m.machine) - sum - broker - self
	return consumers, broker, self, max(others, 0), nil
}

// othersCPU is the CPU seconds all processes but this one use during d.
func othersCPU(d time.Duration) (float64, error) {
	s0, err1 := cpuSeconds(os.Getpid())
	t0, err2 := machineBusy()
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	time.Sleep(d) // the measuring interval itself
	s1, err1 := cpuSeconds(os.Getpid())
	t1, err2 := machineBusy()
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return max((t1-t0)-(s1-s0), 0), nil
}

// quietShare is the share of one core other processes may use for the
// machine to count as quiet, before a run and during it.
const quietShare = 0.05

// waitQuiet waits, up to limit, for a two-second span in which other
// processes use less than quietShare of one core. It reports how long it
// waited and whether the machine got quiet.
func waitQuiet(limit time.Duration) (time.Duration, bool) {
	const span = 2 * time.Second
	start := time.Now()
	for {
		cpu, err := othersCPU(span)
		if err != nil {
			return time.Since(start), false
		}
		if cpu < quietShare*span.Seconds() {
			return time.Since(start), true
		}
		if time.Since(start) >= limit {
			return time.Since(start), false
		}
	}
}
