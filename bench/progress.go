package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress is a run's counters at one moment, as its progress display
// shows them. Line and Bar render it; both are pure.
type Progress struct {
	Phase        string        // connect, hold, publish or drain
	Elapsed      time.Duration // since the run started
	PhaseElapsed time.Duration // since the phase started
	PhaseLimit   time.Duration // the phase's bound: the connect timeout, the hold, the duration or the drain

	Connected, Subscribers int
	Published, Count       uint64  // publishes sent, of the events to publish
	Delivered, Planned     uint64  // deliveries so far, of every event to every subscriber of its channel
	PublishRate            float64 // per second, since the last reading
	DeliveryRate           float64 // per second, since the last reading
	P99                    time.Duration

	Duplicated, OutOfOrder, Reconnects uint64
}

// Percent is how much of its phase the run has done, 0 to 100: streams
// connected, time held, events published, or deliveries received.
func (p Progress) Percent() float64 {
	frac := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return min(max(a/b, 0), 1) * 100
	}
	switch p.Phase {
	case "connect":
		return frac(float64(p.Connected), float64(p.Subscribers))
	case "hold":
		return frac(float64(p.PhaseElapsed), float64(p.PhaseLimit))
	case "publish":
		return frac(float64(p.Published), float64(p.Count))
	case "drain":
		return frac(float64(p.Delivered), float64(p.Planned))
	}
	return 0
}

// Line is the progress as one line of a log, for a stderr that is not a
// terminal (no newline at the end).
func (p Progress) Line() string {
	return fmt.Sprintf("%6.1fs %-7s streams %s/%s  published %s (%s/s)  delivered %s (%s/s)  p99 %s  dup %d ooo %d reconnects %d",
		p.Elapsed.Seconds(), p.Phase, count(uint64(p.Connected)), count(uint64(p.Subscribers)),
		count(p.Published), count(uint64(p.PublishRate)), count(p.Delivered), count(uint64(p.DeliveryRate)),
		Millis(p.P99), p.Duplicated, p.OutOfOrder, p.Reconnects)
}

// barWidth is the number of cells in Bar's bar.
const barWidth = 20

// Bar is the progress as one line to redraw in place on a terminal: the
// phase, how much of it is done, deliveries and their rate, the p99 so far,
// anything wrong, and the phase's time against its bound (no \r, no
// newline).
func (p Progress) Bar() string {
	pct := p.Percent()
	full := int(pct / 100 * barWidth)
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %3d%% [%s%s]", p.Phase, int(pct), strings.Repeat("#", full), strings.Repeat("-", barWidth-full)) // 100% only when done
	if p.Phase == "connect" || p.Phase == "hold" {
		fmt.Fprintf(&b, " streams %s/%s", count(uint64(p.Connected)), count(uint64(p.Subscribers)))
	} else {
		fmt.Fprintf(&b, " delivered %s (%s/s) p99 %s", count(p.Delivered), count(uint64(p.DeliveryRate)), Millis(p.P99))
	}
	if p.Duplicated+p.OutOfOrder+p.Reconnects > 0 {
		fmt.Fprintf(&b, " dup %d ooo %d reconn %d", p.Duplicated, p.OutOfOrder, p.Reconnects)
	}
	fmt.Fprintf(&b, " %s/%s", seconds(p.PhaseElapsed), seconds(p.PhaseLimit))
	return b.String()
}

// seconds formats d as 3.2s, or 1m05s from a minute on.
func seconds(d time.Duration) string {
	if d < time.Minute {
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// progress shows a run's Progress every ProgressEvery, as lines or as a
// bar redrawn in place, until stop.
type progress struct {
	connected  atomic.Int64
	phase      atomic.Pointer[string]
	phaseStart atomic.Int64 // Unix nanoseconds
	done       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

func (p *progress) setPhase(name string) {
	p.phase.Store(&name)
	p.phaseStart.Store(time.Now().UnixNano())
}

func (r *run) startProgress(ctx context.Context) *progress {
	p := &progress{done: make(chan struct{})}
	p.setPhase("connect")
	if r.cfg.Progress == nil {
		return p
	}
	cfg := r.cfg
	limits := map[string]time.Duration{"connect": cfg.ConnectTimeout, "hold": cfg.Hold, "publish": cfg.Duration, "drain": cfg.Drain}
	planned := r.planned()
	p.wg.Go(func() {
		t := time.NewTicker(cfg.ProgressEvery)
		defer t.Stop()
		begin := time.Now()
		var last Progress
		lastAt := begin
		show := func(final bool) {
			now := time.Now()
			phase := *p.phase.Load()
			var all Histogram
			for i := range r.shards {
				all.Add(&r.shards[i])
			}
			cur := Progress{
				Phase: phase, Elapsed: now.Sub(begin),
				PhaseElapsed: now.Sub(time.Unix(0, p.phaseStart.Load())), PhaseLimit: limits[phase],
				Connected: int(p.connected.Load()), Subscribers: cfg.Subscribers,
				Published: r.attempted.Load(), Count: uint64(cfg.Count),
				Delivered: r.delivered.Load(), Planned: planned,
				P99:        all.Quantile(0.99),
				Duplicated: r.dups.Load(), OutOfOrder: r.ooo.Load(), Reconnects: r.reconnects.Load(),
			}
			if secs := now.Sub(lastAt).Seconds(); secs > 0 {
				cur.PublishRate = float64(cur.Published-last.Published) / secs
				cur.DeliveryRate = float64(cur.Delivered-last.Delivered) / secs
			}
			switch {
			case !cfg.ProgressBar:
				fmt.Fprintln(cfg.Progress, cur.Line())
			case final:
				io.WriteString(cfg.Progress, "\r"+cur.Bar()+"\x1b[K\n")
			default:
				io.WriteString(cfg.Progress, "\r"+cur.Bar()+"\x1b[K")
			}
			last, lastAt = cur, now
		}
		for {
			select {
			case <-t.C:
				show(false)
			case <-p.done:
				if cfg.ProgressBar {
					show(true) // leave the last state on its own line
				}
				return
			case <-ctx.Done():
				if cfg.ProgressBar {
					io.WriteString(cfg.Progress, "\n")
				}
				return
			}
		}
	})
	return p
}

// planned is the number of deliveries if every event is published and
// delivered: each event times the subscribers of its channel.
func (r *run) planned() uint64 {
	c := r.cfg.Channels
	subsOn := make([]uint64, c)
	for i := range r.cfg.Subscribers {
		subsOn[i%c]++
	}
	var n uint64
	for ch := range c {
		events := uint64(r.cfg.Count / c)
		if ch < r.cfg.Count%c {
			events++
		}
		n += events * subsOn[ch]
	}
	return n
}

// stop ends the progress display; safe to call more than once.
func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}
