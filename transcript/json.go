package transcript

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parley-chat/parley/store"
)

// schemaVersion is the version of the JSON schema JSON writes (docs/export.md).
const schemaVersion = 1

// conversationJSON is the document JSON writes. Its fields are the schema:
// see docs/export.md before changing any.
type conversationJSON struct {
	Version            int           `json:"version"`
	ID                 string        `json:"id"`
	Title              string        `json:"title"`
	Created            *string       `json:"created"`
	Updated            *string       `json:"updated"`
	Model              string        `json:"model"`
	Instructions       string        `json:"instructions"`
	InstructionsCustom bool          `json:"instructions_custom"`
	Path               []int         `json:"path"`
	Messages           []messageJSON `json:"messages"`
}

// messageJSON is one node of the tree.
type messageJSON struct {
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
}

// timeLayout is RFC 3339 in UTC to the millisecond, the precision the
// store keeps.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// JSON returns every version of every message of t, with the path and the
// settings, as an indented JSON document (docs/export.md). The owner is
// left out.
func JSON(t *store.Tree) ([]byte, error) {
	doc := conversationJSON{
		Version: schemaVersion, ID: t.ID, Title: t.Title, Created: stamp(t.Created), Updated: stamp(t.Updated),
		Model: t.Model, Instructions: t.Instructions, InstructionsCustom: t.InstructionsSet,
		Path: nonNil(t.Path), Messages: make([]messageJSON, 0, len(t.Nodes)),
	}
	for _, n := range t.Nodes {
		m := messageJSON{ID: n.ID, Children: nonNil(n.Kids), Role: n.Role, Status: n.Status, Text: n.Text,
			Error: n.Error, Model: n.Model, CutOff: n.Cut, Created: stamp(n.At)}
		if n.Parent >= 0 {
			m.Parent = &n.Parent
		}
		doc.Messages = append(doc.Messages, m)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	// A file for people and programs, not for a page: "<" stays "<".
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode conversation %s: %w", t.ID, err)
	}
	return b.Bytes(), nil
}

// stamp is an RFC 3339 time, or nil (null) when the store has none.
func stamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeLayout)
	return &s
}

// nonNil makes an empty list [] rather than null.
func nonNil(l []int) []int {
	if l == nil {
		return []int{}
	}
	return l
}
