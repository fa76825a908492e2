package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Summary is the result on one line, for people.
func (r *Result) Summary() string {
	var b strings.Builder
	plural := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return count(uint64(n)) + " " + one + "s"
	}
	fmt.Fprintf(&b, "%s (%s)", plural(r.Connected, "stream"), plural(r.Channels, "channel"))
	if r.Published+r.PublishErrors == 0 && r.Memory != nil {
		fmt.Fprintf(&b, ", idle:%s", r.Memory.summary())
		return b.String()
	}
	rate := "flat out"
	if r.Rate > 0 {
		rate = count(uint64(r.Rate)) + "/s"
	}
	fmt.Fprintf(&b, ", %s, %d B, %s: published %s in %.2fs (%s/s)", plural(r.Publishers, "publisher"), r.Size, rate,
		count(r.Published), r.PublishSeconds, count(uint64(r.PublishRate)))
	if r.PublishErrors > 0 {
		fmt.Fprintf(&b, " + %s failed", count(r.PublishErrors))
	}
	fmt.Fprintf(&b, ", delivered %s of %s (%s/s), latency p50 %s p90 %s p99 %s p99.9 %s max %s, lost %d dup %d out-of-order %d",
		count(r.Delivered), count(r.Expected), count(uint64(r.DeliveryRate)),
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.P999), ms(r.Latency.Max),
		r.Lost, r.Duplicated, r.OutOfOrder)
	if r.Misrouted+r.Foreign > 0 {
		fmt.Fprintf(&b, " misrouted %d foreign %d", r.Misrouted, r.Foreign)
	}
	if r.Reconnects > 0 {
		fmt.Fprintf(&b, ", %d reconnects", r.Reconnects)
	}
	if r.Refused > 0 {
		fmt.Fprintf(&b, ", %s streams refused by the server (%q)", count(r.Refused), r.FirstRefusal)
		if r.SubscribersRefused > 0 {
			fmt.Fprintf(&b, ": %d subscribers never served, their %s events not counted as lost", r.SubscribersRefused, count(r.Unserved))
		}
	}
	if r.LateSends > 0 {
		fmt.Fprintf(&b, ", %s sends behind schedule (max %s)", count(r.LateSends), ms(r.MaxScheduleLag))
	}
	if r.ServerCPU > 0 {
		fmt.Fprintf(&b, ", server CPU %.2fs (%.2fµs/delivery)", r.ServerCPU, r.ServerCPUPerDelivery)
	}
	if r.Memory != nil {
		b.WriteString(",")
		b.WriteString(r.Memory.summary())
	}
	return b.String()
}

func (m *MemoryReport) summary() string {
	var parts []string
	if m.GoPerStream != 0 {
		parts = append(parts, fmt.Sprintf("Go heap+stacks %s/stream", bytesIEC(m.GoPerStream)))
	}
	if m.RSSPerStream != 0 {
		parts = append(parts, fmt.Sprintf("RSS %s/stream", bytesIEC(m.RSSPerStream)))
	}
	if m.After.RSS > 0 {
		parts = append(parts, "RSS "+bytesIEC(float64(m.After.RSS)))
	}
	if m.After.HWM > 0 {
		parts = append(parts, "peak "+bytesIEC(float64(m.After.HWM)))
	}
	if len(parts) == 0 {
		return " server memory unknown: " + m.Error
	}
	return " server " + strings.Join(parts, ", ")
}

func ms(v float64) string { return Millis(time.Duration(v * float64(time.Millisecond))) }

func bytesIEC(v float64) string {
	switch a := max(v, -v); {
	case a >= 1<<30:
		return strconv.FormatFloat(v/(1<<30), 'f', 2, 64) + " GiB"
	case a >= 1<<20:
		return strconv.FormatFloat(v/(1<<20), 'f', 1, 64) + " MiB"
	case a >= 1<<10:
		return strconv.FormatFloat(v/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + " B"
	}
}
