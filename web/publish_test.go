package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

func TestPublish(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	a := ts.do(t, http.MethodPost, "/channels/orders.eu", http.Header{"Content-Type": {"application/json"}}, `{"a":1}`)
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /channels/orders.eu = %d %s %q, want 200 JSON", a.status, a.body, a.header.Get("Content-Type"))
	}
	var p published
	decode(t, a.body, &p)
	if _, err := broker.ParseID(p.ID); err != nil || p.Channel != "orders.eu" {
		t.Errorf("POST /channels/orders.eu = %s, want a valid id and channel orders.eu", a.body)
	}
	if a.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("first publish has Idempotent-Replayed %q", a.header.Get("Idempotent-Replayed"))
	}
}

func TestPublishErrors(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxEventBytes: 1024})
	key := func(k ...string) http.Header { return http.Header{"Idempotency-Key": k} }
	for _, c := range []struct {
		method, path string
		header       http.Header
		body         string
		status       int
	}{
		{"POST", "/channels/bad..name", nil, "x", 400},
		{"POST", "/channels/orders.*", nil, "x", 400},
		{"POST", "/channels/orders.%3E", nil, "x", 400},
		{"POST", "/channels/" + strings.Repeat("a", 201), nil, "x", 400},
		{"POST", "/channels/c?event=rumor.reset", nil, "x", 400},
		{"POST", "/channels/c?event=" + strings.Repeat("e", 65), nil, "x", 400},
		{"POST", "/channels/c?ack=maybe", nil, "x", 400},
		{"POST", "/channels/c", nil, "", 400},
		{"POST", "/channels/c", nil, "\xff\xfe", 400},
		{"POST", "/channels/c", key(strings.Repeat("k", 201)), "x", 400},
		{"POST", "/channels/c", key("tab\there"), "x", 400},
		{"POST", "/channels/c", key("ünicode"), "x", 400},
		{"POST", "/channels/c", key("a", "b"), "x", 400},
		{"POST", "/channels/c", nil, strings.Repeat("x", 1025), 413},
		{"GET", "/nope", nil, "", 404},
		{"GET", "/channels/a/b", nil, "", 404},
		{"DELETE", "/channels/c", nil, "", 405},
		{"PUT", "/publish", nil, "", 405},
	} {
		wantError(t, c.method+" "+c.path, ts.do(t, c.method, c.path, c.header, c.body), c.status)
	}
	if v := ts.metric(t, "rumor_publish_errors_total", map[string]string{"reason": "too_large"}); v != 1 {
		t.Errorf("rumor_publish_errors_total{reason=too_large} = %v, want 1", v)
	}
	if st := ts.hub.Stats(); st.Published != 0 {
		t.Errorf("%d events published by failed requests", st.Published)
	}

	// A body without Content-Length is cut off at the limit too.
	resp, err := ts.Client().Post(ts.URL+"/channels/c", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("y", 2000))))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "chunked POST over the limit", answer{resp.StatusCode, resp.Header, string(b)}, 413)
	if a := ts.do(t, "POST", "/channels/c", nil, strings.Repeat("z", 1024)); a.status != 200 {
		t.Errorf("POST of exactly MaxEventBytes = %d %s, want 200", a.status, a.body)
	}
}

func TestIdempotency(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/channels/pay", nil)
	hdr := http.Header{"Idempotency-Key": {"order-42 attempt"}}
	first := ts.do(t, http.MethodPost, "/channels/pay", hdr, "charge")
	retry := ts.do(t, http.MethodPost, "/channels/pay", hdr, "charge again")
	if first.status != 200 || retry.status != 200 {
		t.Fatalf("publish, retry = %d %s, %d %s; want 200, 200", first.status, first.body, retry.status, retry.body)
	}
	var p1, p2 published
	decode(t, first.body, &p1)
	decode(t, retry.body, &p2)
	if p1.ID != p2.ID {
		t.Errorf("retry with the same Idempotency-Key got id %s, want the first id %s", p2.ID, p1.ID)
	}
	if got := retry.header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("retry header Idempotent-Replayed = %q, want true", got)
	}
	other := ts.publish(t, "pay", "next")
	evs := s.read(t, 2)
	if evs[0].LastEventID != p1.ID || evs[0].Data != "charge" || evs[1].LastEventID != other {
		t.Errorf("stream got %+v, want the first publish once, then the next", evs)
	}
}

func TestBatch(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	s := ts.openStream(t, "/events?channel=a&channel=b.>", nil)
	a := ts.do(t, http.MethodPost, "/publish", nil,
		`[{"channel":"a","event":"created","data":"{\n  \"x\": 1\n}"}, {"channel":"b.c","data":"two"}]`)
	if a.status != http.StatusOK {
		t.Fatalf("POST /publish = %d %s, want 200", a.status, a.body)
	}
	var got []published
	decode(t, a.body, &got)
	if len(got) != 2 || got[0].Channel != "a" || got[1].Channel != "b.c" {
		t.Fatalf("POST /publish = %s, want ids for a and b.c", a.body)
	}
	evs := s.read(t, 2)
	if evs[0].Type != "created" || evs[0].Data != "{\n  \"x\": 1\n}" || evs[0].LastEventID != got[0].ID ||
		evs[1].Type != "message" || evs[1].Data != "two" || evs[1].LastEventID != got[1].ID {
		t.Errorf("stream got %+v, want the batch in order", evs)
	}
}

// TestBatchAllOrNone: any bad item, or a bad body, publishes nothing, and
// the error names the entry both ways (1-based and as an index) and says
// what was expected, never how Go decodes JSON.
func TestBatchAllOrNone(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxBatch: 3, MaxEventBytes: 100})
	for _, c := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"bad channel in item 1", `[{"channel":"a","data":"x"},{"channel":"b..c","data":"y"}]`, 400,
			`entry 2 (index 1): invalid channel "b..c": empty token`},
		{"missing channel", `[{"data":"y"}]`, 400,
			`entry 1 (index 0): "channel" is missing`},
		{"bad type", `[{"channel":"a","data":"x"},{"channel":"b","event":"rumor.x","data":"y"}]`, 400,
			`entry 2 (index 1): invalid event type "rumor.x": the rumor. prefix is reserved`},
		{"empty data", `[{"channel":"a","data":"x"},{"channel":"b","data":""}]`, 400,
			`entry 2 (index 1): "data" is empty: an event needs data (an SSE event without data is never dispatched)`},
		{"missing data", `[{"channel":"a","data":"x"},{"channel":"b"}]`, 400,
			`entry 2 (index 1): "data" is missing: an event needs data (an SSE event without data is never dispatched)`},
		{"number data", `[{"channel":"a","data":"x"},{"channel":"b","data":5}]`, 400,
			`entry 2 (index 1): "data" is a number, want a string (send JSON as a string: "data": "{\"x\": 1}")`},
		{"object data", `[{"channel":"a","data":{"x":1}}]`, 400,
			`entry 1 (index 0): "data" is an object, want a string (send JSON as a string: "data": "{\"x\": 1}")`},
		{"number channel", `[{"channel":7,"data":"x"}]`, 400,
			`entry 1 (index 0): "channel" is a number, want a string`},
		{"null entry", `[null]`, 400,
			`entry 1 (index 0) is null, want an object {"channel", "event", "data"}`},
		{"string entry", `[{"channel":"a","data":"x"},"hello"]`, 400,
			`entry 2 (index 1) is a string, want an object {"channel", "event", "data"}`},
		{"unknown field", `[{"channel":"a","data":"x","id":"1"}]`, 400,
			`entry 1 (index 0): unknown field "id": an entry has "channel", "event" (optional) and "data"`},
		{"bad JSON in an entry", `[{"channel":"a","data":"x"},{"channel":"a" "data":"x"}]`, 400,
			`entry 2 (index 1): not valid JSON: invalid character '"' after object key:value pair`},
		{"trailing garbage", `[{"channel":"a","data":"x"}] x`, 400,
			`data after the batch's closing ]`},
		{"second array", `[{"channel":"a","data":"x"}][]`, 400,
			`data after the batch's closing ]`},
		{"not an array", `{"channel":"a","data":"x"}`, 400,
			`a batch is a JSON array of {"channel", "event", "data"} objects`},
		{"truncated", `[{"channel":"a","data":"x"}`, 400,
			`the body ends before the batch's closing ]`},
		{"truncated in an entry", `[{"channel":"a","data":"x"},{"chan`, 400,
			`entry 2 (index 1): the body ends inside it`},
		{"empty", `[]`, 400, `empty batch: send at least one entry`},
		{"empty body", ``, 400, `a batch is a JSON array of {"channel", "event", "data"} objects; the body is empty`},
		{"over MaxBatch", `[{"channel":"a","data":"1"},{"channel":"a","data":"2"},{"channel":"a","data":"3"},{"channel":"a","data":"4"}]`, 400,
			`more than 3 entries in one batch: split it`},
		{"data over MaxEventBytes", `[{"channel":"a","data":"x"},{"channel":"a","data":"` + strings.Repeat("d", 101) + `"}]`, 413,
			`too large: entry 2 (index 1): data over 100 bytes`},
		{"body over the batch limit", `[{"channel":"a","data":"x"}` + strings.Repeat(" ", 400) + `]`, 413,
			`too large: batch body over 400 bytes`},
	} {
		a := ts.do(t, http.MethodPost, "/publish", nil, c.body)
		wantError(t, c.name, a, c.status)
		var e errorBody
		if json.Unmarshal([]byte(a.body), &e) == nil && e.Error != c.msg {
			t.Errorf("%s: error %q\n\twant %q", c.name, e.Error, c.msg)
		}
	}
	if st := ts.hub.Stats(); st.Published != 0 {
		t.Errorf("failed batches published %d events, want none", st.Published)
	}
	if a := ts.do(t, http.MethodPost, "/publish", nil, `[{"channel":"a","data":"1"},{"channel":"a","data":"2"},{"channel":"a","data":"3"}]`); a.status != 200 {
		t.Errorf("batch of MaxBatch = %d %s, want 200", a.status, a.body)
	}
}

func TestBatchIdempotency(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{})
	hdr := http.Header{"Idempotency-Key": {"import-7"}}
	body := `[{"channel":"a","data":"1"},{"channel":"a","data":"2"}]`
	first := ts.do(t, http.MethodPost, "/publish", hdr, body)
	retry := ts.do(t, http.MethodPost, "/publish", hdr, body)
	if first.body != retry.body || retry.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("batch retry = %s (replayed %q), want %s (replayed true)", retry.body, retry.header.Get("Idempotent-Replayed"), first.body)
	}
	var ids []published
	decode(t, first.body, &ids)
	// Items' keys are the batch's own: no single publish replays one.
	one := ts.do(t, http.MethodPost, "/channels/a", http.Header{"Idempotency-Key": {"import-7#1"}}, "2")
	var p published
	decode(t, one.body, &p)
	if p.ID == ids[1].ID || one.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("single publish with key import-7#1 = %s (replayed %q), want an event of its own", p.ID, one.header.Get("Idempotent-Replayed"))
	}
	if st := ts.hub.Stats(); st.Published != 3 {
		t.Errorf("published %d events, want 3", st.Published)
	}
}

func TestPublishConcurrencyLimit(t *testing.T) {
	ts := newServer(t, broker.Options{}, Options{MaxPublishes: 1})
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() { // holds the only slot while its body trickles in
		resp, err := ts.Client().Post(ts.URL+"/channels/c", "text/plain", pr)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if _, err := pw.Write([]byte("first ")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first publish in flight", func() bool { return ts.h.inflight.Load() == 1 })
	a := ts.do(t, http.MethodPost, "/channels/c", nil, "second")
	wantError(t, "publish over MaxPublishes", a, http.StatusServiceUnavailable)
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want seconds", a.header.Get("Retry-After"))
	}
	if v := ts.metric(t, "rumor_publish_errors_total", map[string]string{"reason": "overload"}); v != 1 {
		t.Errorf("rumor_publish_errors_total{reason=overload} = %v, want 1", v)
	}
	pw.Close()
	if status := <-done; status != http.StatusOK {
		t.Errorf("the first publish = %d, want 200", status)
	}
	ts.publish(t, "c", "after") // the slot is free again
}

// failingRelay is a cluster whose peers never acknowledge.
type failingRelay struct{}

func (failingRelay) Send(*broker.Event)                         {}
func (failingRelay) Watermark(uint64)                           {}
func (failingRelay) Acked(context.Context, *broker.Event) error { return errors.New("peer timed out") }
func (failingRelay) AckedAll(context.Context, *broker.Event) error {
	return errors.New("peer timed out")
}

// TestPeerAckFailure: the event is stored and will spread; the client gets
// 503 with the id, and a retry with the key gets the same id, never a
// second event: 503 again while no peer acknowledges (it waits for the ack
// as the first attempt did), 200 once one does (transport TestAckAllRetryWaits).
func TestPeerAckFailure(t *testing.T) {
	ts := newServer(t, broker.Options{Relay: failingRelay{}}, Options{DefaultAck: broker.AckPeer})
	hdr := http.Header{"Idempotency-Key": {"k"}}
	a := ts.do(t, http.MethodPost, "/channels/c", hdr, "x")
	wantError(t, "publish without peer ack", a, http.StatusServiceUnavailable)
	var e errorBody
	decode(t, a.body, &e)
	if _, err := broker.ParseID(e.ID); err != nil || a.header.Get("Retry-After") == "" {
		t.Errorf("503 body = %s, Retry-After %q; want the stored id and Retry-After", a.body, a.header.Get("Retry-After"))
	}
	first := e.ID
	retry := ts.do(t, http.MethodPost, "/channels/c", hdr, "x")
	e = errorBody{}
	decode(t, retry.body, &e)
	if retry.status != 503 || e.ID != first {
		t.Errorf("retry while no peer acknowledges = %d %s, want 503 with id %s", retry.status, retry.body, first)
	}
	if got := ts.hub.Stats().Published; got != 1 {
		t.Errorf("after the retry the hub published %d events, want 1", got)
	}
	if a := ts.do(t, http.MethodPost, "/channels/c?ack=local", nil, "y"); a.status != 200 {
		t.Errorf("publish with ack=local = %d %s, want 200", a.status, a.body)
	}
	b := ts.do(t, http.MethodPost, "/publish?ack=peer", nil, `[{"channel":"c","data":"1"},{"channel":"c","data":"2"}]`)
	decode(t, b.body, &e)
	if b.status != 503 || len(e.IDs) != 2 {
		t.Errorf("batch without peer ack = %d %s, want 503 with both ids", b.status, b.body)
	}
	all := ts.do(t, http.MethodPost, "/channels/c?ack=all", nil, "z")
	decode(t, all.body, &e)
	if all.status != 503 || e.ID == "" || !strings.Contains(e.Error, "not every member acknowledged") {
		t.Errorf("publish with ack=all, a member never acknowledging = %d %s, want 503 with the id", all.status, all.body)
	}
}

func TestRecoverer(t *testing.T) {
	hub := broker.NewHub(broker.Options{})
	t.Cleanup(hub.Close)
	h, err := NewHandler(Options{Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	wantError(t, "panicking handler", answer{rec.Code, rec.Header(), rec.Body.String()}, http.StatusInternalServerError)
}
