package bench

import (
	"strings"
	"testing"
	"time"
)

func TestProgressBar(t *testing.T) {
	for _, c := range []struct {
		p    Progress
		want string
	}{
		{Progress{Phase: "connect", PhaseElapsed: 1500 * time.Millisecond, PhaseLimit: time.Minute, Connected: 250, Subscribers: 1000},
			"connect  25% [#####---------------] streams 250/1,000 1.5s/1m00s"},
		{Progress{Phase: "publish", PhaseElapsed: 3200 * time.Millisecond, PhaseLimit: 10 * time.Second, Published: 42_000, Count: 100_000,
			Delivered: 41_000_000, DeliveryRate: 345_678.9, P99: 12345 * time.Microsecond},
			"publish  42% [########------------] delivered 41,000,000 (345,678/s) p99 12.35ms 3.2s/10.0s"},
		{Progress{Phase: "drain", PhaseElapsed: time.Second, PhaseLimit: 5 * time.Second, Published: 100, Count: 100,
			Delivered: 999, Planned: 1000, P99: 800 * time.Microsecond, Duplicated: 1, Reconnects: 2},
			"drain    99% [###################-] delivered 999 (0/s) p99 0.800ms dup 1 ooo 0 reconn 2 1.0s/5.0s"},
		{Progress{Phase: "hold", PhaseElapsed: 10 * time.Second, PhaseLimit: 5 * time.Second, Connected: 19_000, Subscribers: 19_000},
			"hold    100% [####################] streams 19,000/19,000 10.0s/5.0s"},
		{Progress{Phase: "publish", Count: 0}, // nothing to publish: no division by zero
			"publish   0% [--------------------] delivered 0 (0/s) p99 0.000ms 0.0s/0.0s"},
	} {
		if got := c.p.Bar(); got != c.want {
			t.Errorf("Bar() =\n%q, want\n%q", got, c.want)
		}
		if strings.ContainsAny(c.p.Bar(), "\r\n") {
			t.Errorf("Bar() = %q holds a line break", c.p.Bar())
		}
	}
}

func TestProgressLine(t *testing.T) {
	p := Progress{Phase: "publish", Elapsed: 2500 * time.Millisecond, Connected: 10, Subscribers: 10, Published: 1234, PublishRate: 500,
		Delivered: 12340, DeliveryRate: 5000, P99: 2 * time.Millisecond}
	want := "   2.5s publish streams 10/10  published 1,234 (500/s)  delivered 12,340 (5,000/s)  p99 2.00ms  dup 0 ooo 0 reconnects 0"
	if got := p.Line(); got != want {
		t.Errorf("Line() =\n%q, want\n%q", got, want)
	}
}

// TestProgressPlanned: the deliveries planned are each event times the
// subscribers of its channel.
func TestProgressPlanned(t *testing.T) {
	r := &run{cfg: Config{Subscribers: 10, Channels: 3, Count: 400}}
	// 400 events over 3 channels: 134, 133, 133; 10 subscribers: 4, 3, 3.
	if got, want := r.planned(), uint64(4*134+3*133+3*133); got != want {
		t.Errorf("planned() = %d, want %d", got, want)
	}
}
