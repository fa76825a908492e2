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

// Memory is what a run saw of the server's memory at one moment. A field
// the run could not read is 0.
type Memory struct {
	RSS        int64 `json:"rss,omitempty"`        // resident set: /proc/PID/status VmRSS, else process_resident_memory_bytes
	HWM        int64 `json:"hwm,omitempty"`        // peak resident set so far: VmHWM (only with a PID)
	HeapInuse  int64 `json:"heapInuse,omitempty"`  // go_memstats_heap_inuse_bytes
	HeapAlloc  int64 `json:"heapAlloc,omitempty"`  // go_memstats_heap_alloc_bytes
	StackInuse int64 `json:"stackInuse,omitempty"` // go_memstats_stack_inuse_bytes
	Goroutines int64 `json:"goroutines,omitempty"` // go_goroutines
}

// MemoryConfig says where a run reads the server's memory. The zero value
// reads nothing.
type MemoryConfig struct {
	PID        int    // read /proc/PID/status; 0 means don't
	MetricsURL string // read these Prometheus metrics; empty means don't
	// GCURL is fetched (and its body thrown away) right before each
	// reading, so that the Go heap holds live memory only:
	// /debug/pprof/heap?gc=1 collects on rumor (--pprof) and on Bare.
	// Empty means don't.
	GCURL string
}

func (c MemoryConfig) enabled() bool { return c.PID != 0 || c.MetricsURL != "" }

// readMemory takes one reading. It fails only if every source failed.
func readMemory(ctx context.Context, client *http.Client, c MemoryConfig) (Memory, error) {
	var m Memory
	var errs []error
	if c.GCURL != "" {
		if _, err := fetch(ctx, client, c.GCURL); err != nil {
			errs = append(errs, fmt.Errorf("gc: %w", err))
		}
	}
	ok := false
	if c.MetricsURL != "" {
		body, err := fetch(ctx, client, c.MetricsURL)
		if err == nil {
			var found bool
			m, found = parseMemMetrics(body)
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

// parseMemMetrics picks the memory gauges out of a Prometheus text
// exposition; found says whether there was any.
func parseMemMetrics(text string) (m Memory, found bool) {
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
		if !ok || p == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
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
