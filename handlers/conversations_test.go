package handlers_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/store"
)

// TestConversationsPage: the page of all conversations lists a browser's
// own, newest first, a page at a time past the sidebar's fifty, with a
// search of their titles; another browser sees none of them; searches count
// as actions and a refused one says why.
func TestConversationsPage(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.limits.ActionsPerMinute = 3 })
	first := a.create(t, "[[echo]]the very first")
	a.waitStatus(t, first, 1, store.StatusDone)
	ctx := context.Background()
	meta, err := a.Store.Meta(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	const more = 109 // 110 in all: the sidebar lists 50, a page 50
	for i := range more {
		conv := store.NewID()
		if _, err := a.Store.Post(ctx, store.Post{Conv: conv, Owner: meta.Owner, Text: "hi", Key: "k", Gen: store.NewID(), Create: true}); err != nil {
			t.Fatal(err)
		}
		if err := a.Store.Touch(ctx, conv, meta.Owner); err != nil {
			t.Fatal(err)
		}
		title := "Note " + strconv.Itoa(i)
		if i%20 == 0 {
			title = "Ocean tides " + strconv.Itoa(i)
		}
		if _, err := a.Store.SetTitle(ctx, store.Title{Conv: conv, Text: title, IfEmpty: true}); err != nil {
			t.Fatal(err)
		}
	}

	// The sidebar says there are older ones, and offers the search.
	_, home := a.getPage(t, a.Client, "/")
	for _, want := range []string{`href="/conversations?page=2">Older conversations ›</a>`, `class="side-search" href="/conversations"`} {
		if !strings.Contains(home, want) {
			t.Errorf("the home page's sidebar lacks %s", want)
		}
	}

	code, page1 := a.getPage(t, a.Client, "/conversations")
	if code != http.StatusOK || strings.Count(page1, `<li><a href="/c/`) != 50 || !strings.Contains(page1, `rel="next" href="/conversations?page=2"`) ||
		strings.Contains(page1, `rel="prev"`) {
		t.Fatalf("page 1: status %d, %d entries; want 50 and a link to page 2 only", code, strings.Count(page1, `<li><a href="/c/`))
	}
	code, page3 := a.getPage(t, a.Client, "/conversations?page=3")
	if code != http.StatusOK || strings.Count(page3, `<li><a href="/c/`) != 10 || strings.Contains(page3, `rel="next"`) ||
		!strings.Contains(page3, `rel="prev" href="/conversations?page=2"`) || !strings.Contains(page3, `href="/c/`+first+`"`) {
		t.Fatalf("page 3: status %d, %d entries; want the 10 oldest (the first among them) and a link back", code, strings.Count(page3, `<li><a href="/c/`))
	}
	if _, page4 := a.getPage(t, a.Client, "/conversations?page=4"); !strings.Contains(page4, "There are no older conversations") {
		t.Error("page 4 does not say there are no older conversations")
	}

	code, found := a.getPage(t, a.Client, "/conversations?q="+url.QueryEscape("  OCEAN  "))
	if code != http.StatusOK || strings.Count(found, `<li><a href="/c/`) != 6 || !strings.Contains(found, "6 conversations found for “OCEAN”") ||
		!strings.Contains(found, `value="OCEAN"`) {
		t.Errorf("search: status %d, %d found; want the 6 ocean conversations, the count and the query kept", code, strings.Count(found, `<li><a href="/c/`))
	}
	if _, none := a.getPage(t, a.Client, "/conversations?q=zebra"); !strings.Contains(none, "No conversation found for “zebra”") {
		t.Error("a search that finds nothing does not say so")
	}

	// Another browser has none of them.
	other := a.NewBrowser()
	if _, theirs := a.getPage(t, other, "/conversations"); strings.Contains(theirs, `<li><a href="/c/`) || !strings.Contains(theirs, "Nothing yet") {
		t.Error("another browser's list shows conversations")
	}
	// The fourth search in a minute (three allowed; the other browser's
	// list was not a search) is refused in words, with the box kept.
	// 104 notes: the newest 100 show, and the page says there are more.
	code, notes := a.getPage(t, a.Client, "/conversations?q=note")
	if code != http.StatusOK || strings.Count(notes, `<li><a href="/c/`) != 100 || !strings.Contains(notes, "The newest 100 of more conversations found for “note”") {
		t.Fatalf("the third search: status %d, %d shown; want the newest 100 and a word that there are more", code, strings.Count(notes, `<li><a href="/c/`))
	}
	code, refused := a.getPage(t, a.Client, "/conversations?q=note")
	if code != http.StatusTooManyRequests || !strings.Contains(refused, "a lot of downloads and searches in a minute. Try again in") || !strings.Contains(refused, `value="note"`) {
		t.Errorf("a search past the limit: status %d; want 429 saying why, the query kept", code)
	}
	// Searches have a budget of their own: the owner can still act (a
	// rename here; Stop the same).
	if code, body := a.action(t, a.Client, "/c/"+first+"/title", url.Values{"title": {"Still mine to rename"}}); code != http.StatusOK {
		t.Errorf("a rename after the searches used up their budget: %d %s", code, body)
	}
}
