package bench

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Record is one line of a sitting's results file (written by
// bench/sitting.sh): which row, target and repetition a run was, and what
// `rumor bench --json` printed.
type Record struct {
	// Row is a row of the performance issue (1a, 1b, 2, 3, 4, 5) or a
	// scaling series (subscribers, channels, size, nodes).
	Row string `json:"row"`
	// Point is the rung of row 4 (events/s) or the value of a scaling
	// series; empty otherwise.
	Point string `json:"point,omitempty"`
	// Target is bare (the reference loop), rumor (one node) or rumor-N (a
	// cluster of N nodes). In the nodes series it is rumor, and Point says
	// how many.
	Target string  `json:"target"`
	Rep    int     `json:"rep"`
	Exit   int     `json:"exit"`   // rumor bench's exit status
	Result *Result `json:"result"` // nil when the run printed no result
}

// Sitting is the records of one sitting, summarised as medians over the
// repetitions and ratios against the bare loop.
type Sitting struct {
	Records []Record
}

// ReadSitting reads a results file, one Record per line; blank lines are
// skipped.
func ReadSitting(r io.Reader) (*Sitting, error) {
	s := &Sitting{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if rec.Row == "" || rec.Target == "" {
			return nil, fmt.Errorf("line %d: no row or target", n)
		}
		s.Records = append(s.Records, rec)
	}
	return s, sc.Err()
}

// measure is one number a table shows: how to read it from a result and
// how to write it.
type measure struct {
	name   string
	get    func(*Result) (float64, bool)
	format func(float64) string
}

var (
	mDeliveries = measure{"deliveries/s", func(r *Result) (float64, bool) { return r.DeliveryRate, r.Delivered > 0 }, fmtCount}
	mCPU        = measure{"server CPU µs/delivery", func(r *Result) (float64, bool) { return r.ServerCPUPerDelivery, r.ServerCPUPerDelivery > 0 }, fmtFixed(2)}
	mP50        = measure{"p50 ms", func(r *Result) (float64, bool) { return r.Latency.P50, r.Latency.Count > 0 }, fmtMillis}
	mP99        = measure{"p99 ms", func(r *Result) (float64, bool) { return r.Latency.P99, r.Latency.Count > 0 }, fmtMillis}
	mGo         = measure{"Go heap+stacks KiB/stream", func(r *Result) (float64, bool) {
		return memField(r, func(m *MemoryReport) float64 { return m.GoPerStream })
	}, fmtFixed(2)}
	mRSS = measure{"RSS KiB/stream", func(r *Result) (float64, bool) {
		return memField(r, func(m *MemoryReport) float64 { return m.RSSPerStream })
	}, fmtFixed(2)}
	mPublishRate = measure{"publishes/s", func(r *Result) (float64, bool) { return r.PublishRate, r.PublishSeconds > 0 }, fmtCount}
)

func memField(r *Result, f func(*MemoryReport) float64) (float64, bool) {
	if r.Memory == nil || f(r.Memory) == 0 {
		return 0, false
	}
	return f(r.Memory) / 1024, true
}

// rowMeasures is what each row and series is about, its headline first.
var rowMeasures = map[string][]measure{
	"1a":          {mDeliveries, mCPU, mP99},
	"1b":          {mDeliveries, mCPU, mP99},
	"2":           {mP99, mP50, mCPU},
	"3":           {mGo, mRSS},
	"4":           {mP99, mPublishRate, mCPU},
	"5":           {mP99, mP50, mCPU},
	"subscribers": {mP99, mCPU, mRSS},
	"channels":    {mDeliveries, mCPU, mP99},
	"size":        {mP99, mCPU, mDeliveries},
	"nodes":       {mP99, mP50, mCPU},
}

// Row 4's rule: a rung is held when the median run publishes at least 99%
// of the rate asked with a p99 under 50 ms.
const (
	rungRateShare = 0.99
	rungMaxP99    = 50.0 // ms
)

// results are the results of one row, point and target.
func (s *Sitting) results(row, point, target string) []*Result {
	var out []*Result
	for _, r := range s.Records {
		if r.Row == row && r.Point == point && r.Target == target && r.Result != nil {
			out = append(out, r.Result)
		}
	}
	return out
}

// Median is the median of m over the results of row, point and target;
// ok is false when none has it.
func (s *Sitting) median(row, point, target string, m measure) (float64, bool) {
	var vs []float64
	for _, r := range s.results(row, point, target) {
		if v, ok := m.get(r); ok {
			vs = append(vs, v)
		}
	}
	return median(vs)
}

func median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// Held reports which targets held rung rate (events/s) of row 4, in order.
func (s *Sitting) Held(rate string) []string {
	var held []string
	for _, t := range s.targets("4") {
		if s.held(rate, t) {
			held = append(held, t)
		}
	}
	return held
}

func (s *Sitting) held(rate, target string) bool {
	asked, err := strconv.ParseFloat(rate, 64)
	if err != nil || asked <= 0 {
		return false
	}
	got, ok1 := s.median("4", rate, target, mPublishRate)
	p99, ok2 := s.median("4", rate, target, mP99)
	return ok1 && ok2 && got >= rungRateShare*asked && p99 < rungMaxP99
}

// highestRung is the highest rung of row 4 target held with every rung
// below it held too; 0 when it held none.
func (s *Sitting) highestRung(target string) float64 {
	best := 0.0
	for _, p := range s.points("4") {
		if !s.held(p, target) {
			break
		}
		best, _ = strconv.ParseFloat(p, 64)
	}
	return best
}

// targets are the targets of a row in table order: bare, rumor, then
// clusters by size.
func (s *Sitting) targets(row string) []string {
	return sortTargets(s.distinct(row, func(r Record) string { return r.Target }))
}

// distinct returns the different values of field in a row's records.
func (s *Sitting) distinct(row string, field func(Record) string) []string {
	var vs []string
	for _, r := range s.Records {
		if v := field(r); r.Row == row && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return vs
}

// sortTargets sorts ts in table order and returns it.
func sortTargets(ts []string) []string {
	rank := func(t string) int {
		switch {
		case t == "bare":
			return 0
		case t == "rumor":
			return 1
		}
		_, size, _ := strings.Cut(t, "-") // rumor-N, dev-N
		n, _ := strconv.Atoi(size)
		return 2 + n
	}
	slices.SortFunc(ts, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a, b)) })
	return ts
}

// points are the points of a row, in numeric order.
func (s *Sitting) points(row string) []string {
	ps := s.distinct(row, func(r Record) string { return r.Point })
	slices.SortFunc(ps, func(a, b string) int {
		x, _ := strconv.ParseFloat(a, 64)
		y, _ := strconv.ParseFloat(b, 64)
		return cmp.Or(cmp.Compare(x, y), cmp.Compare(a, b))
	})
	return ps
}

// rows are the rows present, issue rows first, then the series.
func (s *Sitting) rows() (issue, series []string) {
	for _, r := range s.Records {
		_, known := rowMeasures[r.Row]
		isSeries := known && len(r.Row) > 2
		switch {
		case isSeries && !slices.Contains(series, r.Row):
			series = append(series, r.Row)
		case !isSeries && !slices.Contains(issue, r.Row):
			issue = append(issue, r.Row)
		}
	}
	slices.Sort(issue)
	order := []string{"subscribers", "channels", "size", "nodes"}
	slices.SortFunc(series, func(a, b string) int { return cmp.Compare(slices.Index(order, a), slices.Index(order, b)) })
	return issue, series
}

// shape describes a row from its first result: the load it ran.
func (s *Sitting) shape(row string) string {
	for _, r := range s.Records {
		if r.Row != row || r.Result == nil {
			continue
		}
		res := r.Result
		if res.Published+res.PublishErrors == 0 && res.Memory != nil {
			return fmt.Sprintf("%s idle streams", count(uint64(res.Subscribers)))
		}
		rate := "flat out"
		if res.Rate > 0 {
			rate = count(uint64(res.Rate)) + " events/s"
		}
		if row == "4" {
			rate = "a ladder of rates"
		}
		return fmt.Sprintf("%s subscribers, %s channels, %s B, %d publishers, %s",
			count(uint64(res.Subscribers)), count(uint64(res.Channels)), count(uint64(res.Size)), res.Publishers, rate)
	}
	return "no result"
}

// Markdown writes the summary: every issue row with its measures' medians
// per target and their ratios to the bare loop, row 4's highest rungs,
// every scaling series, and the runs that failed or were not clean.
func (s *Sitting) Markdown(w io.Writer) error {
	var b strings.Builder
	issue, series := s.rows()
	if len(issue) > 0 {
		b.WriteString("### Rows (medians; ratio = target / bare)\n\n")
		ts := s.unionTargets(issue)
		writeHeader(&b, "row", "---", ts)
		for _, row := range issue {
			title := row + ". " + s.shape(row)
			if row == "4" {
				fmt.Fprintf(&b, "| %s | highest rung held (rate ≥ %.0f%%, p99 < %.0f ms) |", title, rungRateShare*100, rungMaxP99)
				bare := s.highestRung("bare")
				for _, t := range ts {
					if !slices.Contains(s.targets(row), t) {
						b.WriteString(cells(t, "", ""))
						continue
					}
					v := s.highestRung(t)
					b.WriteString(cells(t, fmtCount(v)+"/s", ratio(v, bare, v > 0 && bare > 0)))
				}
				b.WriteString("\n")
				continue
			}
			for i, m := range rowMeasures[row] {
				if i == 0 {
					fmt.Fprintf(&b, "| %s | %s |", title, m.name)
				} else {
					fmt.Fprintf(&b, "| | %s |", m.name)
				}
				s.writeCells(&b, row, "", ts, m)
				b.WriteString("\n")
			}
		}
		if slices.Contains(issue, "4") {
			b.WriteString("\n#### Row 4, every rung\n\n")
			s.writeSeries(&b, "4", "events/s")
		}
	}
	for _, row := range series {
		fmt.Fprintf(&b, "\n### How cost grows with %s (%s)\n\n", row, s.shapeAt(row))
		s.writeSeries(&b, row, row)
	}
	s.writeProblems(&b)
	_, err := io.WriteString(w, b.String())
	return err
}

// shapeAt describes a series by its first point's shape, minus the
// varying part.
func (s *Sitting) shapeAt(row string) string {
	ps := s.points(row)
	if len(ps) == 0 {
		return ""
	}
	return "first point: " + s.shape(row)
}

// writeHeader writes a table's header: the first column (aligned by
// align), the measure, and a value column per target with a ratio column
// after every target but bare.
func writeHeader(b *strings.Builder, first, align string, ts []string) {
	fmt.Fprintf(b, "| %s | measure |", first)
	sep := "|" + align + "|---|"
	for _, t := range ts {
		b.WriteString(" " + t + " |")
		sep += "---:|"
		if t != "bare" {
			b.WriteString(" " + t + " / bare |")
			sep += "---:|"
		}
	}
	b.WriteString("\n" + sep + "\n")
}

// writeSeries writes a table with one group of lines per point of row.
func (s *Sitting) writeSeries(b *strings.Builder, row, pointName string) {
	ts := s.targets(row)
	writeHeader(b, pointName, "---:", ts)
	for _, p := range s.points(row) {
		label := p
		if v, err := strconv.ParseFloat(p, 64); err == nil {
			label = fmtCount(v)
		}
		if row == "4" {
			var held []string
			for _, t := range ts {
				if s.held(p, t) {
					held = append(held, t)
				}
			}
			label += " (held: " + cmp.Or(strings.Join(held, ", "), "none") + ")"
		}
		for i, m := range rowMeasures[row] {
			if i == 0 {
				fmt.Fprintf(b, "| %s | %s |", label, m.name)
			} else {
				fmt.Fprintf(b, "| | %s |", m.name)
			}
			s.writeCells(b, row, p, ts, m)
			b.WriteString("\n")
		}
	}
}

// writeCells writes, per target, the median of m and its ratio to bare's.
func (s *Sitting) writeCells(b *strings.Builder, row, point string, ts []string, m measure) {
	bare, bareOK := s.median(row, point, "bare", m)
	for _, t := range ts {
		v, ok := s.median(row, point, t, m)
		if !ok {
			b.WriteString(cells(t, "", ""))
			continue
		}
		b.WriteString(cells(t, m.format(v), ratio(v, bare, bareOK && bare != 0)))
	}
}

// cells is a target's cells: its value, and its ratio unless it is bare.
func cells(target, value, ratio string) string {
	cell := func(v string) string {
		if v == "" {
			return " |"
		}
		return " " + v + " |"
	}
	if target == "bare" {
		return cell(value)
	}
	return cell(value) + cell(ratio)
}

func ratio(v, base float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v/base, 'f', 2, 64)
}

// unionTargets are the targets of any of rows, in table order.
func (s *Sitting) unionTargets(rows []string) []string {
	var all []string
	for _, row := range rows {
		for _, t := range s.targets(row) {
			if !slices.Contains(all, t) {
				all = append(all, t)
			}
		}
	}
	return sortTargets(all)
}

// writeProblems lists the runs without a result or with events lost,
// duplicated, out of order, misrouted or failed publishes.
func (s *Sitting) writeProblems(b *strings.Builder) {
	var lines []string
	for _, r := range s.Records {
		where := fmt.Sprintf("row %s", r.Row)
		if r.Point != "" {
			where += " at " + r.Point
		}
		where += fmt.Sprintf(", %s, rep %d", r.Target, r.Rep)
		switch res := r.Result; {
		case res == nil:
			lines = append(lines, fmt.Sprintf("- %s: no result (exit %d)", where, r.Exit))
		case !res.OK():
			lines = append(lines, fmt.Sprintf("- %s: lost %d, duplicated %d, out of order %d, misrouted %d, publish errors %d, connected %d of %d",
				where, res.Lost, res.Duplicated, res.OutOfOrder, res.Misrouted, res.PublishErrors, res.Connected, res.Subscribers))
		}
	}
	fmt.Fprintf(b, "\n%d runs", len(s.Records))
	if len(lines) == 0 {
		b.WriteString(": nothing lost, duplicated, out of order or misrouted, every publish confirmed.\n")
		return
	}
	fmt.Fprintf(b, "; %d not clean:\n\n%s\n", len(lines), strings.Join(lines, "\n"))
}

func fmtCount(v float64) string { return count(uint64(max(v, 0) + 0.5)) }

func fmtFixed(digits int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', digits, 64) }
}

// fmtMillis writes milliseconds with about three significant digits.
func fmtMillis(v float64) string {
	switch {
	case v < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}
