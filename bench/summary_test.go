package bench

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// sittingSample is a results file as bench/sitting.sh writes it: row 1a
// three times per target, row 3's memory, two rungs of row 4, a point of
// the subscribers series, and one run that printed no result.
const sittingSample = `{"row":"1a","target":"bare","rep":1,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":1000,"serverCPUPerDelivery":2,"latency":{"count":1000,"p50":1,"p99":10}}}
{"row":"1a","target":"rumor","rep":1,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":900,"serverCPUPerDelivery":3,"latency":{"count":1000,"p50":1,"p99":12}}}
{"row":"1a","target":"rumor-3","rep":1,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":500,"serverCPUPerDelivery":6,"latency":{"count":1000,"p50":1,"p99":20}}}
{"row":"1a","target":"bare","rep":2,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":3000,"serverCPUPerDelivery":1,"latency":{"count":1000,"p50":1,"p99":30}}}
{"row":"1a","target":"rumor","rep":2,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":1800,"serverCPUPerDelivery":2,"latency":{"count":1000,"p50":1,"p99":14}}}
{"row":"1a","target":"rumor-3","rep":2,"exit":1,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":990,"deliverySeconds":1,"deliveryRate":400,"serverCPUPerDelivery":8,"latency":{"count":990,"p50":1,"p99":40},"lost":10}}
{"row":"1a","target":"bare","rep":3,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":2000,"serverCPUPerDelivery":4,"latency":{"count":1000,"p50":1,"p99":20}}}
{"row":"1a","target":"rumor","rep":3,"exit":0,"result":{"subscribers":10,"connected":10,"channels":1,"publishers":4,"size":200,"published":100,"publishSeconds":1,"publishRate":100,"expected":1000,"delivered":1000,"deliverySeconds":1,"deliveryRate":2700,"serverCPUPerDelivery":5,"latency":{"count":1000,"p50":1,"p99":16}}}
{"row":"1a","target":"rumor-3","rep":3,"exit":0,"result":null}

{"row":"3","target":"bare","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":1,"size":200,"memory":{"before":{"rss":1},"after":{"rss":2},"rssPerStream":20480,"goPerStream":25600}}}
{"row":"3","target":"rumor","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":1,"size":200,"memory":{"before":{"rss":1},"after":{"rss":2},"rssPerStream":12288,"goPerStream":9728}}}
{"row":"4","point":"1000","target":"bare","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":32,"size":200,"rate":1000,"published":10000,"publishSeconds":10,"publishRate":1000,"delivered":1,"deliverySeconds":1,"latency":{"count":1,"p99":9}}}
{"row":"4","point":"1000","target":"rumor","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":32,"size":200,"rate":1000,"published":10000,"publishSeconds":10,"publishRate":995,"delivered":1,"deliverySeconds":1,"latency":{"count":1,"p99":12}}}
{"row":"4","point":"1500","target":"bare","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":32,"size":200,"rate":1500,"published":15000,"publishSeconds":10,"publishRate":1500,"delivered":1,"deliverySeconds":1,"latency":{"count":1,"p99":30}}}
{"row":"4","point":"1500","target":"rumor","rep":1,"exit":0,"result":{"subscribers":100,"connected":100,"channels":1,"publishers":32,"size":200,"rate":1500,"published":15000,"publishSeconds":10,"publishRate":1500,"delivered":1,"deliverySeconds":1,"latency":{"count":1,"p99":51}}}
{"row":"subscribers","point":"1000","target":"bare","rep":1,"exit":0,"result":{"subscribers":1000,"connected":1000,"channels":100,"publishers":8,"size":200,"rate":1000,"published":1,"publishSeconds":1,"publishRate":1,"delivered":1,"deliverySeconds":1,"serverCPUPerDelivery":4,"latency":{"count":1,"p99":8}}}
{"row":"subscribers","point":"1000","target":"rumor","rep":1,"exit":0,"result":{"subscribers":1000,"connected":1000,"channels":100,"publishers":8,"size":200,"rate":1000,"published":1,"publishSeconds":1,"publishRate":1,"delivered":1,"deliverySeconds":1,"serverCPUPerDelivery":5,"latency":{"count":1,"p99":6}}}
`

// TestSummarizeMedians: the medians over repetitions, their ratios to the
// bare loop, row 4's rungs and the runs that were not clean.
func TestSummarizeMedians(t *testing.T) {
	s, err := ReadSitting(strings.NewReader(sittingSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Records) != 17 {
		t.Fatalf("read %d records, want 17", len(s.Records))
	}
	for _, c := range []struct {
		row, point, target string
		m                  measure
		want               float64
	}{
		{"1a", "", "bare", mDeliveries, 2000},   // 1000, 3000, 2000
		{"1a", "", "rumor", mDeliveries, 1800},  // 900, 1800, 2700
		{"1a", "", "rumor-3", mDeliveries, 450}, // 500, 400 and a run without a result: the mean of two
		{"1a", "", "bare", mCPU, 2},
		{"1a", "", "rumor", mP99, 14},
		{"3", "", "rumor", mGo, 9.5},
		{"3", "", "bare", mRSS, 20},
	} {
		if got, ok := s.median(c.row, c.point, c.target, c.m); !ok || got != c.want {
			t.Errorf("median of %s in row %s, %s = %v, %v; want %v", c.m.name, c.row, c.target, got, ok, c.want)
		}
	}
	if got := s.Held("1000"); !slices.Equal(got, []string{"bare", "rumor"}) {
		t.Errorf("Held(1000) = %q, want bare and rumor (995/s is within 1%%)", got)
	}
	if got := s.Held("1500"); !slices.Equal(got, []string{"bare"}) {
		t.Errorf("Held(1500) = %q, want bare only (rumor's p99 is 51 ms)", got)
	}
	if got := s.Held("2000"); got != nil {
		t.Errorf("Held(2000) = %q, want none: no runs", got)
	}

	var b strings.Builder
	if err := s.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| row | measure | bare | rumor | rumor / bare | rumor-3 | rumor-3 / bare |",
		"| 1a. 10 subscribers, 1 channels, 200 B, 4 publishers, flat out | deliveries/s | 2,000 | 1,800 | 0.90 | 450 | 0.23 |",
		"| | server CPU µs/delivery | 2.00 | 3.00 | 1.50 | 7.00 | 3.50 |",
		"| 3. 100 idle streams | Go heap+stacks KiB/stream | 25.00 | 9.50 | 0.38 | | |",
		"| 4. 100 subscribers, 1 channels, 200 B, 32 publishers, a ladder of rates | highest rung held (rate ≥ 99%, p99 < 50 ms) | 1,500/s | 1,000/s | 0.67 | | |",
		"| 1,500 (held: bare) | p99 ms | 30.00 | 51.00 | 1.70 |",
		"### How cost grows with subscribers",
		"| 1,000 | p99 ms | 8.00 | 6.00 | 0.75 |",
		"17 runs; 2 not clean:",
		"- row 1a, rumor-3, rep 2: lost 10,",
		"- row 1a, rumor-3, rep 3: no result (exit 0)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

// TestSummarizeRejects: a line that is not a record is an error naming it.
func TestSummarizeRejects(t *testing.T) {
	for _, in := range []string{"{\"row\":\"1a\",\"target\":\"bare\"}\nnot json\n", "{\"target\":\"bare\"}\n"} {
		if _, err := ReadSitting(strings.NewReader(in)); err == nil {
			t.Errorf("ReadSitting(%q): no error", in)
		}
	}
	var r Record
	if err := json.Unmarshal([]byte(`{"row":"2","target":"rumor","rep":2,"exit":1,"result":{"lost":3}}`), &r); err != nil || r.Result.Lost != 3 {
		t.Errorf("record = %+v, %v", r, err)
	}
}
