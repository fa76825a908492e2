package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Sample is what a run read of the server at one moment. A field the run
// could not read is 0.
type Sample struct {
	RSS        int64 `json:"rss,omitempty"`        // resident set: /proc/PID/status VmRSS, else process_resident_memory_bytes
	HWM        int64 `json:"hwm,omitempty"`        // peak resident set so far: VmHWM (only with a PID)
	HeapInuse  int64 `json:"heapInuse,omitempty"`  // go_memstats_heap_inuse_bytes
	HeapAlloc  int64 `json:"heapAlloc,omitempty"`  // go_memstats_heap_alloc_bytes
	StackInuse int64 `json:"stackInuse,omitempty"` // go_memstats_stack_inuse_bytes
	Goroutines int64 `json:"goroutines,omitempty"` // go_goroutines
	// CPUSeconds is the CPU time (user and system) the process has used:
	// /proc/PID/stat, else process_cpu_seconds_total.
	CPUSeconds float64 `json:"cpuSeconds,omitempty"`
}

// Probe says where a run reads the server's memory and CPU time. The zero
// value reads nothing.
type Probe struct {
	PID        int    // read /proc/PID/status and /proc/PID/stat; 0 means don't
	MetricsURL string // read these Prometheus metrics; empty means don't
	// GCURL is fetched (and its body thrown away) right before each
	// reading, so that the Go heap holds live memory only:
	// /debug/pprof/heap?gc=1 collects on rumor (--pprof) and on Bare.
	// Empty means don't.
	GCURL string
}

func (c Probe) enabled() bool { return c.PID != 0 || c.MetricsURL != "" }

// probing reports whether any of ps reads something.
func probing(ps []Probe) bool {
	for _, p := range ps {
		if p.enabled() {
			return true
		}
	}
	return false
}

// readSamples takes one reading of every server and sums them, so that a
// cluster is measured as a whole. CPU time is summed only when every
// server's could be read, so that a missing one never passes for a saving.
// It fails if any server could not be read at all.
func readSamples(ctx context.Context, client *http.Client, ps []Probe, gc bool) (Sample, error) {
	var sum Sample
	var errs []error
	cpuAll := true
	for _, p := range ps {
		if !p.enabled() {
			continue
		}
		m, err := readSample(ctx, client, p, gc)
		if err != nil {
			errs = append(errs, err)
		}
		sum.RSS += m.RSS
		sum.HWM += m.HWM
		sum.HeapInuse += m.HeapInuse
		sum.HeapAlloc += m.HeapAlloc
		sum.StackInuse += m.StackInuse
		sum.Goroutines += m.Goroutines
		sum.CPUSeconds += m.CPUSeconds
		cpuAll = cpuAll && m.CPUSeconds > 0
	}
	if !cpuAll {
		sum.CPUSeconds = 0
	}
	return sum, errors.Join(errs...)
}

// readSample takes one reading, after a collection if gc is set and the
// probe has a GCURL. It fails only if every source failed.
func readSample(ctx context.Context, client *http.Client, c Probe, gc bool) (Sample, error) {
	var m Sample
	var errs []error
	if gc && c.GCURL != "" {
		if _, err := fetch(ctx, client, c.GCURL); err != nil {
			errs = append(errs, fmt.Errorf("gc: %w", err))
		}
	}
	ok := false
	if c.MetricsURL != "" {
		body, err := fetch(ctx, client, c.MetricsURL)
		if err == nil {
			var found bool
			m, found = parseMetrics(body)
			ok = ok || found
			if !found {
				errs = append(errs, fmt.Errorf("%s: no memory metrics", c.MetricsURL))
			}
		} else {
			errs = append(errs, err)
		}
	}
	if c.PID != 0 {
		rss, err := readRSS(c.PID)
		if err == nil {
			m.RSS, m.HWM = rss.RSS, rss.HWM
			ok = true
		} else {
			errs = append(errs, err)
		}
		if cpu, err := readCPU(c.PID); err == nil {
			m.CPUSeconds = cpu
		} else {
			errs = append(errs, err)
		}
	}
	if !ok {
		return m, errors.Join(errs...)
	}
	return m, nil
}

func fetch(ctx context.Context, client *http.Client, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// parseMetrics picks the memory gauges and the CPU time out of a
// Prometheus text exposition; found says whether there was any.
func parseMetrics(text string) (m Sample, found bool) {
	fields := map[string]*int64{
		"process_resident_memory_bytes": &m.RSS,
		"go_memstats_heap_inuse_bytes":  &m.HeapInuse,
		"go_memstats_heap_alloc_bytes":  &m.HeapAlloc,
		"go_memstats_stack_inuse_bytes": &m.StackInuse,
		"go_goroutines":                 &m.Goroutines,
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		p := fields[name]
		if !ok || (p == nil && name != "process_cpu_seconds_total") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		if p == nil {
			m.CPUSeconds = v
			continue
		}
		*p = int64(v)
		found = true
	}
	return m, found
}

type rss struct{ RSS, HWM int64 }

// readRSS reads VmRSS and VmHWM from /proc/PID/status.
func readRSS(pid int) (rss, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return rss{}, err
	}
	return parseStatus(string(b))
}

func parseStatus(s string) (rss, error) {
	var r rss
	for line := range strings.Lines(s) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(value) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return rss{}, fmt.Errorf("status: unexpected %s line %q", name, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return rss{}, fmt.Errorf("status: %s: %w", name, err)
		}
		if name == "VmRSS" {
			r.RSS = kb << 10
		} else {
			r.HWM = kb << 10
		}
	}
	if r.RSS == 0 {
		return rss{}, errors.New("status: no VmRSS")
	}
	return r, nil
}

// readCPU reads the CPU time pid has used from /proc/PID/stat.
func readCPU(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStat(string(b))
}

// parseStat reads utime and stime, in clock ticks of 1/100 s (USER_HZ,
// which Linux fixes at 100 for /proc), from a /proc/PID/stat line.
func parseStat(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces and parentheses
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	f := strings.Fields(s[i+1:]) // from the state, field 3
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return float64(utime+stime) / 100, nil
}
