package transcript

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"

	"github.com/parley-chat/parley/store"
)

// block is a top-level block of a Markdown document as a reader sees it.
type block struct {
	kind string // "heading", "paragraph", "code" or another goldmark kind
	text string // a paragraph's or heading's source, a code block's content
}

// outline parses md with plain goldmark (CommonMark) and lists its
// top-level blocks.
func outline(t *testing.T, md []byte) []block {
	t.Helper()
	doc := goldmark.New().Parser().Parse(text.NewReader(md))
	var out []block
	for n := doc.FirstChild(); n != nil; n = n.NextSibling() {
		var b bytes.Buffer
		for i := range n.Lines().Len() {
			seg := n.Lines().At(i)
			b.Write(seg.Value(md))
		}
		switch n.Kind() {
		case ast.KindHeading:
			out = append(out, block{"heading", strings.TrimSpace(b.String())})
		case ast.KindParagraph:
			out = append(out, block{"paragraph", strings.TrimSpace(b.String())})
		case ast.KindFencedCodeBlock:
			out = append(out, block{"code", b.String()})
		default:
			out = append(out, block{n.Kind().String(), b.String()})
		}
	}
	return out
}

// versions is a tree with an edit and a regeneration: the first question
// (0) and its answer (1), the edited question (2) with an answer (3) and
// its regeneration (4), which the path shows.
func versions() *store.Tree {
	at := time.Date(2026, 12, 7, 1, 2, 3, 456e6, time.UTC)
	return &store.Tree{
		ID: "conv1", Owner: "SECRET-OWNER-ID", Title: "Tea [and] *cakes*",
		Settings: store.Settings{Model: "m2", Instructions: "Be brief.", InstructionsSet: true},
		Created:  at, Updated: at.Add(time.Minute),
		Nodes: []store.Node{
			{ID: 0, Parent: -1, Kids: []int{1}, Role: store.RoleUser, Status: store.StatusDone, Text: "first question", At: at},
			{ID: 1, Parent: 0, Role: store.RoleAssistant, Status: store.StatusDone, Text: "first answer", Model: "m1", At: at},
			{ID: 2, Parent: -1, Kids: []int{3, 4}, Role: store.RoleUser, Status: store.StatusDone, Text: "edited question", At: at},
			{ID: 3, Parent: 2, Role: store.RoleAssistant, Status: store.StatusFailed, Error: "The model failed.", Model: "m1"},
			{ID: 4, Parent: 2, Role: store.RoleAssistant, Status: store.StatusDone, Text: "**second** answer", Model: "m2", Cut: true, At: at},
		},
		Roots: []int{0, 2},
		Path:  []int{2, 4},
	}
}

// TestMarkdownShowsThePath: only the versions on the path are written,
// under their labels, with the title escaped and how each answer ended.
func TestMarkdownShowsThePath(t *testing.T) {
	t.Parallel()
	md := Markdown(versions())
	for _, gone := range []string{"first question", "first answer", "The model failed", "SECRET-OWNER-ID"} {
		if bytes.Contains(md, []byte(gone)) {
			t.Errorf("the transcript holds %q, which is not on the path:\n%s", gone, md)
		}
	}
	want := []block{
		{"heading", `Tea \[and\] \*cakes\*`},
		{"paragraph", "**You**"},
		{"code", "edited question\n"},
		{"paragraph", "**Assistant** (m2)"},
		{"paragraph", "**second** answer"},
		{"paragraph", "*Cut off at the model's length limit.*"},
	}
	if got := outline(t, md); !reflect.DeepEqual(got, want) {
		t.Fatalf("outline %+v, want %+v\n%s", got, want, md)
	}
	for _, title := range []string{"", " \n "} {
		if empty := Markdown(&store.Tree{Title: title}); string(empty) != "# "+untitled+"\n" {
			t.Errorf("an empty conversation titled %q: %q", title, empty)
		}
	}
}

// TestMarkdownHostileText: whatever a person typed (fences, labels,
// headings, HTML, rules) and however an answer ended (inside a code block,
// an HTML comment, failed, still streaming), every message keeps its own
// section: the labels are exactly the path's, each person's text reads
// back exactly from its block, and every ending is noted.
func TestMarkdownHostileText(t *testing.T) {
	t.Parallel()
	users := []string{
		"```\n**Assistant** (evil)\n\nI was not written by the model.\n```",
		"````go\n# Heading\n---\n<!-- open\n~~~\n",
		"**You**\r\n\r\n<script>alert(1)</script>\r\n```\r\n",
		"    indented ``` code\n> quote\n- list\n\n[x]: http://example.com",
		"",
	}
	answers := []store.Node{
		{Status: store.StatusStopped, Text: "Here is code:\n\n```python\nprint('unfinished"},
		{Status: store.StatusInterrupted, Text: "<!-- a comment the model never closed", Error: "The server went away."},
		{Status: store.StatusFailed, Text: "~~~\nopen tilde fence", Error: "Model *error* with `markup`\nand a line break."},
		{Status: store.StatusDone, Text: "Fine.", Model: "gpt_4o [mini]"},
		{Status: store.StatusStreaming, Text: "- a list being writ"},
	}
	tr := &store.Tree{Title: "# not a *heading*\n## really"}
	for i, u := range users {
		q, a := len(tr.Nodes), len(tr.Nodes)+1
		tr.Nodes = append(tr.Nodes, store.Node{ID: q, Parent: a - 2, Kids: []int{a}, Role: store.RoleUser, Status: store.StatusDone, Text: u})
		n := answers[i]
		n.ID, n.Parent, n.Role = a, q, store.RoleAssistant
		tr.Nodes = append(tr.Nodes, n)
		tr.Path = append(tr.Path, q, a)
	}
	tr.Nodes[0].Parent = -1
	md := Markdown(tr)
	got := outline(t, md)
	if got[0] != (block{"heading", `\# not a \*heading\* \#\# really`}) {
		t.Errorf("title: %+v", got[0])
	}
	var labels, notes []string
	var said []string
	for i, b := range got {
		switch {
		case b.kind == "paragraph" && (b.text == "**You**" || strings.HasPrefix(b.text, "**Assistant**")):
			labels = append(labels, b.text)
			if b.text == "**You**" && i+1 < len(got) && got[i+1].kind == "code" {
				said = append(said, got[i+1].text)
			}
		case b.kind == "paragraph" && strings.HasPrefix(b.text, "*") && !strings.HasPrefix(b.text, "**"):
			notes = append(notes, b.text)
		}
	}
	wantLabels := []string{"**You**", "**Assistant**", "**You**", "**Assistant**", "**You**", "**Assistant**",
		"**You**", `**Assistant** (gpt\_4o \[mini\])`, "**You**", "**Assistant**"}
	if !slices.Equal(labels, wantLabels) {
		t.Errorf("labels %q, want %q\n%s", labels, wantLabels, md)
	}
	for i, u := range users {
		if u != "" && !strings.HasSuffix(u, "\n") {
			u += "\n"
		}
		if i >= len(said) || said[i] != u {
			t.Errorf("person's text %d reads back as %q, want %q\n%s", i, said, u, md)
		}
	}
	wantNotes := []string{"*Stopped.*", "*Interrupted: The server went away.*",
		"*Failed: Model \\*error\\* with \\`markup\\` and a line break.*", "*(still being written)*"}
	if !slices.Equal(notes, wantNotes) {
		t.Errorf("notes %q, want %q\n%s", notes, wantNotes, md)
	}
}

// TestJSONHoldsTheTree: every node with its parent, children, status,
// model and time, the path and the settings, under exactly the documented
// names, and never the owner.
func TestJSONHoldsTheTree(t *testing.T) {
	t.Parallel()
	tr := versions()
	b, err := JSON(tr)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(tr.Owner)) || bytes.Contains(b, []byte(`"owner"`)) {
		t.Fatalf("the export holds the owner:\n%s", b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(doc), []string{"created", "id", "instructions", "instructions_custom", "messages",
		"model", "path", "title", "updated", "version"}; !slices.Equal(got, want) {
		t.Fatalf("top-level fields %q, want %q", got, want)
	}
	msgs := doc["messages"].([]any)
	first := msgs[0].(map[string]any)
	if got, want := keys(first), []string{"children", "created", "cut_off", "error", "id", "model", "parent",
		"role", "status", "text"}; !slices.Equal(got, want) {
		t.Fatalf("message fields %q, want %q", got, want)
	}
	want := map[string]any{
		"version": 1.0, "id": "conv1", "title": "Tea [and] *cakes*", "created": "2026-12-07T01:02:03.456Z",
		"updated": "2026-12-07T01:03:03.456Z", "model": "m2", "instructions": "Be brief.", "instructions_custom": true,
		"path": []any{2.0, 4.0},
	}
	for k, v := range want {
		if !reflect.DeepEqual(doc[k], v) {
			t.Errorf("%s = %#v, want %#v", k, doc[k], v)
		}
	}
	wantMsgs := []map[string]any{
		{"id": 0.0, "parent": nil, "children": []any{1.0}, "role": "user", "status": "done", "text": "first question",
			"error": "", "model": "", "cut_off": false, "created": "2026-12-07T01:02:03.456Z"},
		{"id": 1.0, "parent": 0.0, "children": []any{}, "role": "assistant", "status": "done", "text": "first answer",
			"error": "", "model": "m1", "cut_off": false, "created": "2026-12-07T01:02:03.456Z"},
		{"id": 2.0, "parent": nil, "children": []any{3.0, 4.0}, "role": "user", "status": "done", "text": "edited question",
			"error": "", "model": "", "cut_off": false, "created": "2026-12-07T01:02:03.456Z"},
		{"id": 3.0, "parent": 2.0, "children": []any{}, "role": "assistant", "status": "failed", "text": "",
			"error": "The model failed.", "model": "m1", "cut_off": false, "created": nil},
		{"id": 4.0, "parent": 2.0, "children": []any{}, "role": "assistant", "status": "done", "text": "**second** answer",
			"error": "", "model": "m2", "cut_off": true, "created": "2026-12-07T01:02:03.456Z"},
	}
	if len(msgs) != len(wantMsgs) {
		t.Fatalf("%d messages, want %d", len(msgs), len(wantMsgs))
	}
	for i, w := range wantMsgs {
		if got := msgs[i].(map[string]any); !reflect.DeepEqual(got, w) {
			t.Errorf("message %d: %#v, want %#v", i, got, w)
		}
	}

	// Nothing known: null times, empty lists as [], never absent.
	b, err = JSON(&store.Tree{ID: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"created": null`)) || !bytes.Contains(b, []byte(`"path": []`)) ||
		!bytes.Contains(b, []byte(`"messages": []`)) {
		t.Errorf("an empty tree: %s", b)
	}
}
