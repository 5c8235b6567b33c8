package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/store"
)

// download gets path as browser c and returns the response, its body read.
func (a *app) download(t *testing.T, c *http.Client, path string) (*http.Response, []byte) {
	t.Helper()
	res, err := c.Get(a.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

// TestExportDownloads: the owner and a read-only viewer both download the
// conversation as Markdown and as JSON, as attachments named after the
// title and never cached; an unknown conversation is the page's 404.
func TestExportDownloads(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	conv := a.create(t, "a question to download")
	a.waitStatus(t, conv, 1, store.StatusDone)
	a.waitNamed(t, conv)
	meta, err := a.Store.Meta(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	viewer := a.NewBrowser()
	for _, tc := range []struct{ ext, contentType string }{
		{"md", "text/markdown; charset=utf-8"},
		{"json", "application/json"},
	} {
		var bodies [][]byte
		for who, c := range map[string]*http.Client{"owner": a.Client, "viewer": viewer} {
			res, body := a.download(t, c, "/c/"+conv+"/export."+tc.ext)
			h := res.Header
			if res.StatusCode != http.StatusOK || h.Get("Content-Type") != tc.contentType || h.Get("Cache-Control") != "no-store" {
				t.Fatalf("%s's %s download: status %d, %q, Cache-Control %q", who, tc.ext, res.StatusCode, h.Get("Content-Type"), h.Get("Cache-Control"))
			}
			disp := h.Get("Content-Disposition")
			if !strings.HasPrefix(disp, `attachment; filename="`) || !strings.Contains(disp, "."+tc.ext+`"; filename*=UTF-8''`) {
				t.Errorf("%s's %s download: Content-Disposition %q", who, tc.ext, disp)
			}
			if h.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("%s's %s download: Content-Length %q for %d bytes", who, tc.ext, h.Get("Content-Length"), len(body))
			}
			bodies = append(bodies, body)
		}
		if !bytes.Equal(bodies[0], bodies[1]) {
			t.Errorf("the owner and a viewer got different %s files", tc.ext)
		}
		if tc.ext == "md" && (!bytes.HasPrefix(bodies[0], []byte("# ")) || !bytes.Contains(bodies[0], []byte("a question to download")) ||
			!bytes.Contains(bodies[0], []byte("**Assistant**"))) {
			t.Errorf("Markdown download:\n%s", bodies[0])
		}
		if tc.ext == "json" && (!json.Valid(bodies[0]) || bytes.Contains(bodies[0], []byte(meta.Owner))) {
			t.Errorf("JSON download is not JSON, or holds the owner:\n%s", bodies[0])
		}
	}
	for _, path := range []string{"/c/" + store.NewID() + "/export.md", "/c/" + store.NewID() + "/export.json", "/c/not-an-id!/export.md"} {
		res, body := a.download(t, viewer, path)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "There is no conversation at this address") {
			t.Errorf("%s: status %d, not the 404 page", path, res.StatusCode)
		}
	}
}

// TestExportFollowsShareLinks: with a passphrase, a shared link's visitor
// downloads what they may read, and nothing when share links are off.
func TestExportFollowsShareLinks(t *testing.T) {
	t.Parallel()
	for _, share := range []bool{true, false} {
		t.Run("share="+strconv.FormatBool(share), func(t *testing.T) {
			t.Parallel()
			a := codeApp(t, share)
			if res, _ := a.enter(t, a.Client, passphrase, "/"); res.StatusCode != http.StatusSeeOther {
				t.Fatalf("enter: status %d", res.StatusCode)
			}
			conv := a.create(t, "a shared question")
			a.waitStatus(t, conv, 1, store.StatusDone)
			stranger := a.NewBrowser()
			want := http.StatusUnauthorized
			if share {
				want = http.StatusOK
			}
			for _, ext := range []string{"md", "json"} {
				if res, _ := a.download(t, stranger, "/c/"+conv+"/export."+ext); res.StatusCode != want {
					t.Errorf("export.%s from a shared link, share links %v: status %d, want %d", ext, share, res.StatusCode, want)
				}
				if res, _ := a.download(t, a.Client, "/c/"+conv+"/export."+ext); res.StatusCode != http.StatusOK {
					t.Errorf("export.%s by the owner: status %d", ext, res.StatusCode)
				}
			}
		})
	}
}

// exported is the JSON export as docs/export.md documents it, decoded
// strictly: a field the document does not name fails the decoding.
type exported struct {
	Version            int     `json:"version"`
	ID                 string  `json:"id"`
	Title              string  `json:"title"`
	Created            *string `json:"created"`
	Updated            *string `json:"updated"`
	Model              string  `json:"model"`
	Instructions       string  `json:"instructions"`
	InstructionsCustom bool    `json:"instructions_custom"`
	Path               []int   `json:"path"`
	Messages           []struct {
		ID       int     `json:"id"`
		Parent   *int    `json:"parent"`
		Children []int   `json:"children"`
		Role     string  `json:"role"`
		Status   string  `json:"status"`
		Text     string  `json:"text"`
		Error    string  `json:"error"`
		Model    string  `json:"model"`
		CutOff   bool    `json:"cut_off"`
		Created  *string `json:"created"`
	} `json:"messages"`
}

// TestExportJSONMatchesTheStore: a conversation with a regenerated answer,
// an edited first question and a failed answer, downloaded as JSON by a
// viewer and read back, holds field for field what the store holds: every
// version with its parent, children, role, status, text, error, model and
// time, the path and the settings.
func TestExportJSONMatchesTheStore(t *testing.T) {
	t.Parallel()
	a := newApp(t, nil)
	ctx := context.Background()
	conv := a.create(t, "first question")
	done := a.waitStatus(t, conv, 1, store.StatusDone)
	a.waitNamed(t, conv)
	if code, body := a.action(t, a.Client, "/c/"+conv+"/regenerate", url.Values{"rev": {done.Rev}}); code != http.StatusOK {
		t.Fatalf("regenerate: %d %q", code, body)
	}
	if again := a.waitStatus(t, conv, 1, store.StatusDone); again.Rev == done.Rev || again.Version != 2 {
		t.Fatalf("regenerated answer: %+v", again)
	}
	meta, err := a.Store.Meta(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Gen.Edit(ctx, generation.Edit{Asker: generation.Asker{Owner: meta.Owner}, Conv: conv, Index: 0,
		Text: "[[echo]]An edited *question* whose answer stops inside\n```go\nfunc f() {", Key: store.NewID(), Rev: a.waitStatus(t, conv, 0, store.StatusDone).Rev}); err != nil {
		t.Fatalf("edit: %v", err)
	}
	a.waitStatus(t, conv, 1, store.StatusDone)
	if res := a.post(t, conv, "please [[fail]]", store.NewID()); res.StatusCode != http.StatusOK {
		t.Fatalf("post: status %d", res.StatusCode)
	}
	a.waitStatus(t, conv, 3, store.StatusFailed)

	res, body := a.download(t, a.NewBrowser(), "/c/"+conv+"/export.json")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("download: status %d", res.StatusCode)
	}
	tree, err := a.Store.Export(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	// The conversation has the shape the test is about: two first
	// questions, two versions of the first answer, a failed answer.
	if len(tree.Roots) != 2 || len(tree.Nodes[0].Kids) != 2 || len(tree.Nodes) != 7 || tree.Nodes[6].Status != store.StatusFailed {
		t.Fatalf("tree: roots %v, %d nodes, first kids %v", tree.Roots, len(tree.Nodes), tree.Nodes[0].Kids)
	}
	if bytes.Contains(body, []byte(tree.Owner)) {
		t.Fatalf("the export holds the owner's ID")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var got exported
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode the export: %v\n%s", err, body)
	}
	compareExport(t, got, tree)
}

// compareExport fails for every field of e that differs from tree's.
func compareExport(t *testing.T, e exported, tree *store.Tree) {
	t.Helper()
	same := func(what string, got, want any) {
		t.Helper()
		if gt, ok := got.(time.Time); ok {
			if !gt.Equal(want.(time.Time)) {
				t.Errorf("%s: exported %v, stored %v", what, gt, want)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: exported %#v, stored %#v", what, got, want)
		}
	}
	same("version", e.Version, 1)
	same("id", e.ID, tree.ID)
	same("title", e.Title, tree.Title)
	same("created", instant(t, e.Created), tree.Created)
	same("updated", instant(t, e.Updated), tree.Updated)
	same("model", e.Model, tree.Model)
	same("instructions", e.Instructions, tree.Instructions)
	same("instructions_custom", e.InstructionsCustom, tree.InstructionsSet)
	same("path", e.Path, tree.Path)
	if len(e.Messages) != len(tree.Nodes) {
		t.Fatalf("%d messages exported, %d stored", len(e.Messages), len(tree.Nodes))
	}
	for i, m := range e.Messages {
		n := tree.Nodes[i]
		at := "message " + strconv.Itoa(i) + " "
		parent := -1 // null
		if m.Parent != nil {
			parent = *m.Parent
		}
		same(at+"id", m.ID, n.ID)
		same(at+"parent", parent, n.Parent)
		same(at+"children", m.Children, append([]int{}, n.Kids...))
		same(at+"role", m.Role, n.Role)
		same(at+"status", m.Status, n.Status)
		same(at+"text", m.Text, n.Text)
		same(at+"error", m.Error, n.Error)
		same(at+"model", m.Model, n.Model)
		same(at+"cut_off", m.CutOff, n.Cut)
		same(at+"created", instant(t, m.Created), n.At)
	}
}

// instant parses an exported RFC 3339 time; null is the zero time.
func instant(t *testing.T, s *string) time.Time {
	t.Helper()
	if s == nil {
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339, *s)
	if err != nil {
		t.Errorf("time %q is not RFC 3339: %v", *s, err)
	}
	return at
}

// TestExportsAreCounted: each download reads the whole tree, so downloads
// count as actions: past the limit, 429 with a wait, for watchers too.
func TestExportsAreCounted(t *testing.T) {
	t.Parallel()
	a := newApp(t, func(c *appConfig) { c.limits.ActionsPerMinute = 2 })
	conv := a.create(t, "hello")
	a.waitStatus(t, conv, 1, store.StatusDone)
	watcher := a.NewBrowser()
	for i, want := range []int{200, 200, 429} {
		res, err := watcher.Get(a.URL + "/c/" + conv + "/export.json")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want || (want == 429 && res.Header.Get("Retry-After") == "") {
			t.Fatalf("download %d: %d (Retry-After %q), want %d", i+1, res.StatusCode, res.Header.Get("Retry-After"), want)
		}
	}
}
