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

	// Snapshot, then stream, with rumor.js: the head, then a stream from
	// it gets exactly what came after; history reads the same events.
	page.eval(t, `window.recipe = {events: [], page: null};
		rumor.head("demo").then((h) => { recipe.head = h;
			window.fromHead = rumor.subscribe("demo", {lastEventId: h.head, onEvent: (ev) => recipe.events.push(ev.id)}); });
		rumor.history("demo", {limit: 1}).then((p) => { recipe.page = p; }); true`)
	page.wait(t, "the head and a page of history", `recipe.head && recipe.page && window.fromHead && fromHead.readyState === "open"`)
	after := c.publish(t, n1, "demo", "", "after the head")
	page.wait(t, "the event after the head", `recipe.events.length >= 1`)
	var recipe struct {
		Head   struct{ Last, Head string }
		Events []string
		Page   struct {
			Events []struct{ ID, Data string }
			More   bool
			Next   string
		}
	}
	if err := json.Unmarshal([]byte(page.eval(t, `JSON.stringify(recipe)`).(string)), &recipe); err != nil {
		t.Fatal(err)
	}
	if recipe.Head.Last != want[0].id || !strings.HasPrefix(recipe.Head.Head, want[0].id) || len(recipe.Events) != 1 || recipe.Events[0] != after {
		t.Errorf("rumor.head then a stream from it: head %+v, events %q; want last %s, then only %s", recipe.Head, recipe.Events, want[0].id, after)
	}
	if p := recipe.Page; len(p.Events) != 1 || p.Events[0].ID != before || !p.More || p.Next == "" {
		t.Errorf("rumor.history(demo, {limit: 1}) = %+v, want %s and more", p, before)
	}
	// HTTP/1.1 gives a page six connections to a node: free them for what
	// follows.
	page.eval(t, `[env, plain].forEach((es) => es.close()); [lib, last, fromHead].forEach((s) => s.close()); true`)
	page.eval(t, `rumor.history("a..b").then(() => { window.refused = "resolved"; }, (e) => { window.refused = e.status + " " + e.message; }); true`)
	page.wait(t, "rumor.history's refusal", `window.refused !== undefined`)
	if got := page.eval(t, `window.refused`).(string); !strings.HasPrefix(got, "400 invalid channel") {
		t.Errorf("rumor.history of a bad channel rejected with %q, want 400 and the node's error", got)
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
