package broker_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/rumorhq/rumor/broker"
)

type envelope struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	Type    string `json:"type"`
	Data    string `json:"data"`
}

// checkEnvelopeFrame: the enveloped frame is one event with the event's
// id line and type, whose data is one line of JSON naming its channel and
// holding its data, whatever the data.
func checkEnvelopeFrame(tb testing.TB, e *broker.Event) envelope {
	tb.Helper()
	frame := e.EnvelopeFrame()
	events, others := parseSSE(tb, frame)
	if len(events) != 1 || len(others) != 0 {
		tb.Fatalf("EnvelopeFrame() = %q: events %+v, fields %q; want one event, no other field", frame, events, others)
	}
	ev := events[0]
	if ev.id != e.Position().String() || ev.typ != e.Type {
		tb.Fatalf("EnvelopeFrame() = %q: id %q, type %q; want %q, %q", frame, ev.id, ev.typ, e.Position(), e.Type)
	}
	var env envelope
	if err := json.Unmarshal([]byte(ev.data), &env); err != nil {
		tb.Fatalf("EnvelopeFrame() data %q is not JSON: %v", ev.data, err)
	}
	want := envelope{ID: e.ID.String(), Channel: e.Channel, Type: e.Type, Data: string([]rune(string(e.Data)))}
	if env != want {
		tb.Fatalf("EnvelopeFrame() data = %+v, want %+v", env, want)
	}
	return env
}

func TestEnvelopeFrame(t *testing.T) {
	for _, data := range []string{
		"hello",
		`{"a":1}`,
		"a\r\nb\rc\nd\r",
		"\n\nid: 1\nretry: 5\nevent: x\n\n",
		"quote \" backslash \\ tab \t nul \x00 bell \x07",
		"<script>&amp;</script>",
		"line \u2028 para \u2029 emoji 😀 é",
		"\xff\xfe invalid",
	} {
		e := &broker.Event{ID: testID, Channel: "orders.eu", Type: "order.paid", Data: []byte(data)}
		checkEnvelopeFrame(t, e)
		if a, b := e.EnvelopeFrame(), e.EnvelopeFrame(); &a[0] != &b[0] {
			t.Error("EnvelopeFrame() built the frame twice")
		}
	}
	e := &broker.Event{ID: testID, Channel: "chat", Data: []byte("hi")}
	got := string(e.EnvelopeFrame())
	want := "id: " + testID.String() + "\ndata: {\"id\":\"" + testID.String() + "\",\"channel\":\"chat\",\"data\":\"hi\"}\n\n"
	if got != want {
		t.Errorf("EnvelopeFrame() = %q, want %q", got, want)
	}
}

// FuzzEnvelopeFrame: no data can add a field, end the event early or
// break the JSON.
func FuzzEnvelopeFrame(f *testing.F) {
	f.Add("orders.eu", "", []byte("hello"))
	f.Add("a", "order.paid", []byte("a\r\nb\rc\nd\r\"}\\"))
	f.Add("x.y", "t", []byte("\xed\xa0\x80\u2028\x00"))
	f.Fuzz(func(t *testing.T, channel, typ string, data []byte) {
		if broker.ValidateChannel(channel) != nil || typ != "" && broker.ValidateType(typ) != nil {
			return
		}
		checkEnvelopeFrame(t, &broker.Event{ID: testID, Channel: channel, Type: typ, Data: data})
	})
}

// A subscription with Envelope gets every event's shared enveloped frame,
// naming the channel each came from; one without gets the data as sent.
func TestSubscribeEnvelope(t *testing.T) {
	h := newHub(t, broker.Options{})
	ps := patterns(t, "news", "orders.>")
	plain, err := h.Subscribe(broker.SubscribeRequest{Patterns: ps})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var envs [2]*broker.Subscription
	for i := range envs {
		if envs[i], err = h.Subscribe(broker.SubscribeRequest{Patterns: ps, Envelope: true}); err != nil {
			t.Fatal(err)
		}
		defer envs[i].Close()
	}
	publish(t, h, "news", "n1")
	publish(t, h, "orders.eu", "o1")
	publish(t, h, "other", "x")
	a, b := drain(t, envs[0]), drain(t, envs[1])
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("enveloped subscriptions got %d and %d events, want 2", len(a), len(b))
	}
	var channels []string
	for i, e := range a {
		fa, fb := envs[0].Frame(e), envs[1].Frame(b[i])
		if &fa[0] != &fb[0] {
			t.Errorf("event %v: enveloped frame built per subscription, want it shared", e.ID)
		}
		channels = append(channels, checkEnvelopeFrame(t, e).Channel)
	}
	if want := []string{"news", "orders.eu"}; !slices.Equal(channels, want) {
		t.Errorf("envelope channels = %q, want %q", channels, want)
	}
	for _, e := range drain(t, plain) {
		if f := plain.Frame(e); string(f) != string(e.Frame()) {
			t.Errorf("plain subscription's frame = %q, want the data as published %q", f, e.Frame())
		}
	}
}

// Last starts a stream with the last N retained events of its channels, in
// arrival order, then live ones with no gap; a resume ignores it.
func TestSubscribeLast(t *testing.T) {
	for _, tc := range []struct {
		last     int
		patterns []string
		want     []int // indexes into a, a, a, b, b, c, c (published in that order)
	}{
		{1, []string{"a"}, []int{2}},
		{10, []string{"a"}, []int{0, 1, 2}},
		{3, []string{"a", "b"}, []int{2, 3, 4}},
		{3, []string{"*"}, []int{4, 5, 6}},
	} {
		h := newHub(t, broker.Options{})
		ids := append(append(publishN(t, h, "a", 3), publishN(t, h, "b", 2)...), publishN(t, h, "c", 2)...)
		s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, tc.patterns...), Last: tc.last})
		if err != nil {
			t.Fatal(err)
		}
		var want []broker.ID
		for _, i := range tc.want {
			want = append(want, ids[i])
		}
		if got := idsOf(s.Replay); !slices.Equal(got, want) {
			t.Errorf("Subscribe(%q, Last %d).Replay = %v, want %v", tc.patterns, tc.last, got, want)
		}
		live := publish(t, h, "a", "live")
		if got := idsOf(drain(t, s)); !slices.Equal(got, []broker.ID{live}) {
			t.Errorf("Subscribe(%q, Last %d) then live = %v, want %v", tc.patterns, tc.last, got, live)
		}
		s.Close()
	}
	// With a resume position, Last is ignored: the resume decides.
	h := newHub(t, broker.Options{})
	b := publishN(t, h, "b", 3)
	s, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "b"), From: broker.PositionOf(b[0]), Last: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := idsOf(s.Replay); !slices.Equal(got, b[1:]) {
		t.Errorf("resume after %v with Last 5: Replay = %v, want %v", b[0], got, b[1:])
	}
	if _, err := h.Subscribe(broker.SubscribeRequest{Patterns: patterns(t, "b"), Last: -1}); err == nil {
		t.Error("Subscribe(Last -1) = nil error, want one")
	}
}

// Streams write from their own goroutines: the first to ask builds the
// enveloped frame, and every one gets the same bytes.
func TestEnvelopeFrameConcurrent(t *testing.T) {
	h := newHub(t, broker.Options{})
	s := subscribe(t, h, broker.ID{}, "c")
	publish(t, h, "c", "shared")
	e := drain(t, s)[0]
	frames := make(chan []byte, 8)
	for range cap(frames) {
		go func() { frames <- e.EnvelopeFrame() }()
	}
	first := <-frames
	for range cap(frames) - 1 {
		if f := <-frames; &f[0] != &first[0] {
			t.Fatal("EnvelopeFrame() gave streams different copies")
		}
	}
}
