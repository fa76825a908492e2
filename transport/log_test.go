package transport

import (
	"log"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

// memberlist's "[LEVEL] memberlist: message" lines become slog records at
// the matching level, without the prefix.
func TestLogBridgeLevels(t *testing.T) {
	rec := newLogRecorder()
	ml := log.New(logWriter{slog.New(rec).With("component", "memberlist")}, "", 0)
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=127.0.0.1:1",
		"[INFO] memberlist: Marking n2 as failed",
		"[WARN] memberlist: Got ping for unexpected node",
		"[ERR] memberlist: Failed fallback TCP ping: EOF",
		"[ERROR] memberlist: spelled out",
		"[TRACE] memberlist: very chatty",
		"2026/01/02 15:04:05 [WARN] memberlist: with the standard log prefix",
		"no level at all",
	} {
		ml.Print(line)
	}
	want := []struct {
		level slog.Level
		msg   string
	}{
		{slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{slog.LevelInfo, "Marking n2 as failed"},
		{slog.LevelWarn, "Got ping for unexpected node"},
		{slog.LevelError, "Failed fallback TCP ping: EOF"},
		{slog.LevelError, "spelled out"},
		{slog.LevelDebug, "very chatty"},
		{slog.LevelWarn, "with the standard log prefix"},
		{slog.LevelInfo, "no level at all"},
	}
	got := rec.records()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].level != w.level || got[i].msg != w.msg {
			t.Errorf("record %d = %v %q, want %v %q", i, got[i].level, got[i].msg, w.level, w.msg)
		}
		if c := got[i].attrs["component"]; !slices.Equal(c, []string{"memberlist"}) {
			t.Errorf("record %d component = %v, want [memberlist]", i, c)
		}
	}
}

// A real node's memberlist lines arrive in the node's logger tagged
// component=memberlist, once: not also as the transport's.
func TestMemberlistLogsThroughSlog(t *testing.T) {
	rec := newLogRecorder()
	a := startNode(t, "a")
	startNodeWith(t, "b", nodeOpts{join: []string{a.c.GossipAddr()}, log: rec})
	isMemberlist := func(r logRecord) bool { return slices.Contains(r.attrs["component"], "memberlist") }
	waitFor(t, "a memberlist log line from b", 5*time.Second, func() bool {
		return slices.ContainsFunc(rec.records(), isMemberlist)
	})
	for _, r := range rec.records() {
		if !isMemberlist(r) {
			continue
		}
		if c := r.attrs["component"]; !slices.Equal(c, []string{"memberlist"}) {
			t.Fatalf("memberlist record %q has component %v, want [memberlist]", r.msg, c)
		}
		if strings.HasPrefix(r.msg, "[") || strings.Contains(r.msg, "memberlist: ") {
			t.Errorf("memberlist record %q keeps its prefix", r.msg)
		}
	}
}
