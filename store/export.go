package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tree is a whole conversation, every version of every message, as read at
// one instant: what an export holds.
type Tree struct {
	ID, Owner, Title string
	Settings
	Created, Updated time.Time
	Nodes            []Node // by Node.ID
	Roots            []int  // the first message's versions, in order of creation
	Path             []int  // the selected path: the node at each position
}

// Node is one message of a tree.
type Node struct {
	ID     int
	Parent int // -1 for a first message
	Kids   []int
	Role   string
	Status string
	Text   string
	Error  string
	Model  string
	Cut    bool
	At     time.Time // when it was written (zero for messages stored before the tree)
}

// Export reads conv's whole tree in one step.
func (s *Store) Export(ctx context.Context, conv string) (*Tree, error) {
	k := keysFor(conv)
	res, err := exportScript.Run(ctx, s.rdb, []string{k.meta, k.msgs}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("export conversation: %w", err)
	}
	meta, mok := pairs(res[0])
	msgs, sok := pairs(res[1])
	text, tok := res[2].(string)
	if len(res) != 3 || !mok || !sok || !tok {
		return nil, fmt.Errorf("export conversation: malformed reply")
	}
	t := &Tree{ID: conv, Owner: meta["owner"], Title: meta["title"],
		Settings: Settings{Model: meta["model"], Instructions: meta["sys"]},
		Created:  msTime(meta["created"]), Updated: msTime(meta["updated"])}
	_, t.InstructionsSet = meta["sys"]
	count, _ := strconv.Atoi(meta["count"])
	nodes, err := strconv.Atoi(meta["nodes"])
	if err != nil { // stored before the tree: node i is at position i
		nodes = count
	}
	for i := range nodes {
		t.Nodes = append(t.Nodes, readNode(msgs, i, count))
	}
	if a, err := strconv.Atoi(meta["amsg"]); err == nil && a >= 0 && a < nodes {
		t.Nodes[a].Text = text // streaming: its text so far is in its own key
	}
	// Kids in order of creation: node IDs grow.
	for _, n := range t.Nodes {
		if n.Parent < 0 {
			t.Roots = append(t.Roots, n.ID)
		} else if n.Parent < len(t.Nodes) {
			t.Nodes[n.Parent].Kids = append(t.Nodes[n.Parent].Kids, n.ID)
		}
	}
	for i := range count {
		n, err := strconv.Atoi(msgs["p."+strconv.Itoa(i)])
		if err != nil {
			n = i
		}
		t.Path = append(t.Path, n)
	}
	return t, nil
}

// readNode reads node i of msgs; a conversation stored before the tree has
// no parents: each node follows the one before.
func readNode(msgs map[string]string, i, count int) Node {
	p := strconv.Itoa(i) + "."
	n := Node{ID: i, Parent: i - 1, Role: msgs[p+"role"], Status: msgs[p+"status"], Text: msgs[p+"text"],
		Error: msgs[p+"error"], Model: msgs[p+"model"], Cut: msgs[p+"cut"] == "1", At: msTime(msgs[p+"at"])}
	if par, ok := msgs[p+"parent"]; ok {
		n.Parent = -1
		if v, err := strconv.Atoi(par); err == nil {
			n.Parent = v
		}
	}
	return n
}

// pairs reads an HGETALL reply.
func pairs(v any) (map[string]string, bool) {
	l, ok := v.([]any)
	if !ok || len(l)%2 != 0 {
		return nil, false
	}
	m := make(map[string]string, len(l)/2)
	for i := 0; i < len(l); i += 2 {
		k, kok := l[i].(string)
		v, vok := l[i+1].(string)
		if !kok || !vok {
			return nil, false
		}
		m[k] = v
	}
	return m, true
}

func msTime(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
