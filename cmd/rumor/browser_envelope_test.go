package main

// Which channel, in a real browser: a plain EventSource with
// ?envelope=json learns the channel of every event of a stream of several
// channels and patterns, the event's type stays the publisher's, a stream
// without it gets the data as published, rumor.js hands the channel to
// onEvent, ?last= starts a stream with the latest events, and the UI's log
// shows each event's channel.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

func TestBrowserEnvelope(t *testing.T) {
	exe := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	defer cancel()
	c := startCluster(t, ctx, 3)
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	// Retained before any page opens: ?last=1 must start with it.
	before := c.publish(t, n3, "demo", "", "before")

	b := startBrowser(t, ctx, exe)
	page := b.open(t, n2.URL()+"/")
	page.wait(t, "rumor.js", `typeof rumor === "object"`)
	page.eval(t, `window.got = {env: [], plain: [], lib: [], last: []};
		const keep = (list) => (e) => list.push({type: e.type, data: e.data, id: e.lastEventId});
		window.env = new EventSource("/events?channel=demo&channel=orders.%3E&envelope=json");
		env.onmessage = keep(got.env);
		env.addEventListener("order.paid", keep(got.env));
		window.plain = new EventSource("/events?channel=demo&channel=orders.%3E");
		plain.onmessage = keep(got.plain);
		plain.addEventListener("order.paid", keep(got.plain));
		window.lib = rumor.subscribe(["demo", "orders.>"], {types: ["message", "order.paid"],
			onEvent: (ev) => got.lib.push({id: ev.id, channel: ev.channel, type: ev.type, data: ev.data})});
		window.last = rumor.subscribe("demo", {last: 1, onEvent: (ev) => got.last.push({id: ev.id, channel: ev.channel, data: ev.data})});
		true`)
	page.wait(t, "the streams to open", `env.readyState === 1 && plain.readyState === 1 && lib.readyState === "open" && last.readyState === "open"`)

	type sent struct{ id, channel, typ, data string }
	want := []sent{
		{"", "demo", "message", "line one\nline two"},
		{"", "orders.eu", "message", `{"order":1,"note":"\"quoted\" </script>"}`},
		{"", "orders.us", "order.paid", "paid \u2028 é"},
	}
	for i, w := range want {
		typ := ""
		if w.typ != "message" {
			typ = w.typ
		}
		want[i].id = c.publish(t, n1, w.channel, typ, w.data)
	}
	page.wait(t, "every event on every stream", `got.env.length === 3 && got.plain.length === 3 && got.lib.length === 3 && got.last.length === 2`)

	var got struct {
		Env, Plain []struct{ Type, Data, ID string }
		Lib, Last  []struct{ ID, Channel, Type, Data string }
	}
	if err := json.Unmarshal([]byte(page.eval(t, `JSON.stringify(got)`).(string)), &got); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		e := got.Env[i]
		var env struct{ ID, Channel, Type, Data string }
		if err := json.Unmarshal([]byte(e.Data), &env); err != nil {
			t.Fatalf("EventSource with ?envelope=json: data %q is not JSON: %v", e.Data, err)
		}
		wantType := w.typ
		if wantType == "message" {
			wantType = ""
		}
		if env.ID != w.id || env.Channel != w.channel || env.Type != wantType || env.Data != w.data || e.Type != w.typ || strings.Split(e.ID, "~")[0] != w.id {
			t.Errorf("EventSource with ?envelope=json: event %d = %+v, data %+v; want id %s, channel %s, type %s, data %q", i, e, env, w.id, w.channel, w.typ, w.data)
		}
		if p := got.Plain[i]; p.Data != w.data || p.Type != w.typ {
			t.Errorf("EventSource without ?envelope: event %d = %+v, want the data as published %q, type %s", i, p, w.data, w.typ)
		}
		if l := got.Lib[i]; l.ID != w.id || l.Channel != w.channel || l.Type != w.typ || l.Data != w.data {
			t.Errorf("rumor.js onEvent %d = %+v, want %+v", i, l, w)
		}
	}
	if l := got.Last; l[0].ID != before || l[0].Data != "before" || l[1].ID != want[0].id || l[0].Channel != "demo" {
		t.Errorf("rumor.subscribe(demo, {last: 1}) = %+v, want the retained %s, then %s", l, before, want[0].id)
	}

	// The UI's console: its log shows each event's channel.
	page.do(t, "subscribe in the console", chromedp.SendKeys(chromedp.ID("sub-channels"), "demo orders.>\n"))
	page.wait(t, "the console's subscription to open", `document.querySelector('#log li[data-kind="open"]') !== null`)
	id := c.publish(t, n3, "orders.eu", "", "to the console")
	page.waitIDs(t, []string{id})
	if ch := page.eval(t, fmt.Sprintf(`document.querySelector('#log li.event[data-id=%q] .ev-channel')?.textContent`, id)); ch != "orders.eu" {
		t.Errorf("the UI's log shows channel %v for %s, want orders.eu", ch, id)
	}
	b.checkExceptions(t)
}
