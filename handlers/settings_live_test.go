package handlers_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-chat/parley/store"
)

// TestSettingsReachEveryViewer: a change of a conversation's model or
// instructions reaches a viewer's live stream (another tab, or someone
// watching) as the page's signals, without a reload.
func TestSettingsReachEveryViewer(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	_, cursor := a.page(t, conv)
	res, cancel := a.events(t, conv, cursor)
	defer cancel()
	for _, form := range []url.Values{{"model": {"small"}}, {"instructions": {`Say "$x" \ then stop.`}}} {
		if code, body := a.action(t, a.Client, "/c/"+conv+"/settings", form); code != http.StatusOK {
			t.Fatalf("settings %v: %d %s", form, code, body)
		}
	}
	want := []string{`"model":"small"`, `"instructions":"Say \"$x\" \\ then stop."`, `"custom":true`}
	var seen string
	err := readSSE(res.Body, func(ev sseEvent) bool {
		for _, l := range ev.Data {
			if v, ok := strings.CutPrefix(l, "signals "); ok {
				seen = v
			}
		}
		for _, w := range want {
			if !strings.Contains(seen, w) {
				return true
			}
		}
		return false
	})
	for _, w := range want {
		if !strings.Contains(seen, w) {
			t.Fatalf("the stream's last signals %s lack %s (read: %v)", seen, w, err)
		}
	}
}
