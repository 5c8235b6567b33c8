package handlers_test

import (
	"context"
	"fmt"
	"github.com/parley-chat/parley/internal/viewer"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// TestRedisCluster runs the whole server on a real Redis Cluster (three
// masters, three replicas, on loopback): conversations on every shard stream
// to their viewers through sharded pub/sub over at most one subscription
// connection per master, and viewers converge to the stored conversation,
// with nothing doubled or missing, while a master hands over to its replica
// and while a master dies. The browser's conversation list is live on the
// same connections: its owner's channel is sharded too.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t)
	t.Run("AnswersStreamOnEveryShard", func(t *testing.T) { testClusterStreams(t, c) })
	t.Run("SlotMoved", func(t *testing.T) { testClusterSlotMoves(t, c) })
	t.Run("GracefulFailover", func(t *testing.T) {
		testClusterFailover(t, c, func(master string) string { return c.Failover(t, master) }, true)
	})
	t.Run("MasterKilled", func(t *testing.T) {
		testClusterFailover(t, c, func(master string) string { return c.KillMaster(t, master) }, false)
	})
}

func newClusterApp(t *testing.T, c *testredis.Cluster, demo llm.DemoConfig) *app {
	return newApp(t, func(cfg *appConfig) {
		cfg.cluster = c
		cfg.demo = demo
		// A fail-over takes a few seconds (cluster-node-timeout plus the
		// election); the lease must outlive it for the answer to go on.
		cfg.store.LeaseTTL, cfg.gen.LeaseTTL = 15*time.Second, 15*time.Second
		cfg.hub.ProbeInterval = time.Second
	})
}

func testClusterStreams(t *testing.T, c *testredis.Cluster) {
	a := newClusterApp(t, c, llm.DemoConfig{TokensPerSecond: 100, Tokens: 150})
	masters := c.Masters(t)
	var convs []string
	for _, m := range masters {
		convs = append(convs, clusterCreate(t, a, c, m, "question for "+m))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	views := followAll(ctx, t, a, convs, 4)

	// While every conversation has its room open and the browser's list
	// is followed: one subscription connection per master, none on the
	// replicas, and each master holds the channels of its own slots (a
	// room's channel plus the probe, plus the owner's channel on its master).
	for _, conv := range convs {
		defer pinRoom(t, a, conv)()
	}
	owner := ownerOf(t, a, a.Client)
	home := openTab(t, a, a.Client, "the home page", "/", "/sidebar/events", false)
	waitTab(t, home, "every conversation listed", func(_, last string) bool {
		for _, conv := range convs {
			if !strings.Contains(last, `href="/c/`+conv+`"`) {
				return false
			}
		}
		return true
	})
	ownerMaster := c.MasterFor(t, store.OwnerChannel(owner))
	for _, m := range masters {
		want := 2
		if m == ownerMaster {
			want = 3
		}
		clusterWait(t, "the channels of "+m, func() bool { return sharded(t, m) == want })
		clients := pubsubClients(t, m)
		if len(clients) != 1 {
			t.Fatalf("master %s has %d subscription connections, want 1:\n%s", m, len(clients), strings.Join(clients, "\n"))
		}
		if r := c.ReplicaOf(t, m); len(pubsubClients(t, r)) != 0 {
			t.Errorf("replica %s has subscription connections", r)
		}
	}
	if n := a.Hub.Stats().SubscriptionConns; n != int64(len(masters)) {
		t.Errorf("hub reports %d subscription connections, want %d", n, len(masters))
	}
	// Another tab renames a conversation: the SPUBLISH on the owner's
	// master reaches the list.
	if code, body := a.action(t, a.Client, "/c/"+convs[0]+"/title", url.Values{"title": {"Renamed on a cluster"}}); code != 200 {
		t.Fatalf("rename: %d %s", code, body)
	}
	waitTab(t, home, "the rename", func(shown, last string) bool {
		return strings.Contains(last, entry(convs[0], "Renamed on a cluster")) && strings.Contains(shown, entry(convs[0], "Renamed on a cluster"))
	})

	checkViews(t, a, convs, views.wait(t))
	for i, conv := range convs {
		stored := a.waitStatus(t, conv, 1, store.StatusDone)
		want := a.Model.Reply([]llm.Message{{Role: llm.RoleUser, Content: "question for " + masters[i]}})
		if stored.Text != want {
			t.Errorf("conversation on %s: stored answer differs from the model's reply:\n got %q\nwant %q", masters[i], stored.Text, want)
		}
	}
}

// testClusterSlotMoves reshards the slot of one conversation to another
// master while answers stream: the hub's connection to the old master keeps
// its other channel, and the moved channel goes to the connection of the new
// master (one connection that held channels of several slots is exactly what
// go-redis cannot re-route, issue 3099).
func testClusterSlotMoves(t *testing.T, c *testredis.Cluster) {
	a := newClusterApp(t, c, llm.DemoConfig{TokensPerSecond: 100, Tokens: 400})
	masters := c.Masters(t)
	from, to := masters[0], masters[1]
	moving := clusterCreate(t, a, c, from, "moving question")
	staying := clusterCreate(t, a, c, from, "staying question")
	for c.Slot(t, store.Channel(staying)) == c.Slot(t, store.Channel(moving)) {
		staying = clusterCreate(t, a, c, from, "staying question")
	}
	other := clusterCreate(t, a, c, to, "other question")
	convs := []string{moving, staying, other}
	texts := []string{"moving question", "staying question", "other question"}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	views := followAll(ctx, t, a, convs, 3)
	for _, conv := range convs {
		defer pinRoom(t, a, conv)()
	}
	// The viewers' browser has its owner's channel subscribed while any of
	// its streams is open: a sidebar stream keeps it for the whole test.
	owner := ownerOf(t, a, a.Client)
	home := openTab(t, a, a.Client, "the home page", "/", "/sidebar/events", false)
	waitTab(t, home, "the list", func(_, last string) bool { return strings.Contains(last, "/c/"+moving) })
	ownerOn := func(addr string) int {
		if c.MasterFor(t, store.OwnerChannel(owner)) == addr {
			return 1
		}
		return 0
	}
	// Channels per connection, counting the probe: two rooms on from, one
	// on to (and the owner's channel where its slot is).
	clusterWait(t, "the rooms to subscribe", func() bool {
		return sharded(t, from) == 3+ownerOn(from) && sharded(t, to) == 2+ownerOn(to)
	})
	slot := c.Slot(t, store.Channel(moving))
	start := time.Now()
	c.MoveSlot(t, slot, to)
	clusterWait(t, "the moved channel on the new master's connection", func() bool {
		return sharded(t, from) == 2+ownerOn(from) && sharded(t, to) == 3+ownerOn(to)
	})
	t.Logf("slot %d moved from %s to %s; the hub followed after %v", slot, from, to, time.Since(start).Round(time.Millisecond))
	for _, m := range []string{from, to} {
		if n := len(pubsubClients(t, m)); n != 1 {
			t.Errorf("master %s has %d subscription connections, want 1", m, n)
		}
	}

	checkViews(t, a, convs, views.wait(t))
	for i, conv := range convs {
		stored := a.waitStatus(t, conv, 1, store.StatusDone)
		want := a.Model.Reply([]llm.Message{{Role: llm.RoleUser, Content: texts[i]}})
		if stored.Text != want {
			t.Errorf("%s: stored answer differs from the model's reply:\n got %q\nwant %q", texts[i], stored.Text, want)
		}
	}
}

// pinRoom keeps conv's room, and so its subscription, open until the
// returned func is called, however soon its viewers leave.
func pinRoom(t *testing.T, a *app, conv string) func() {
	t.Helper()
	release, err := a.Hub.OnStop(context.Background(), conv, "pin", func() {})
	if err != nil {
		t.Fatalf("pin the room of %s: %v", conv, err)
	}
	return release
}

// sharded returns how many sharded channels the hub's connection to the
// master at addr holds, -1 when it has no connection there.
func sharded(t *testing.T, addr string) int {
	t.Helper()
	clients := pubsubClients(t, addr)
	if len(clients) != 1 {
		return -1
	}
	_, rest, _ := strings.Cut(clients[0], " ssub=")
	n, _, _ := strings.Cut(rest, " ")
	v, err := strconv.Atoi(n)
	if err != nil {
		return -1
	}
	return v
}

// testClusterFailover streams an answer on every shard, fails one master
// over while they stream, and checks that every viewer ends with the stored
// conversation and that the hub moved its subscription to the new master.
// lossless says whether the hand-over keeps every write (CLUSTER FAILOVER
// does; a killed master loses what its replica had not received yet).
func testClusterFailover(t *testing.T, c *testredis.Cluster, failover func(master string) string, lossless bool) {
	a := newClusterApp(t, c, llm.DemoConfig{TokensPerSecond: 100, Tokens: 500})
	masters := c.Masters(t)
	var convs []string
	for _, m := range masters {
		convs = append(convs, clusterCreate(t, a, c, m, "long question for "+m))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	views := followAll(ctx, t, a, convs, 3)
	clusterWait(t, "the answers to stream", func() bool {
		for _, conv := range convs {
			snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
			if err != nil || len(snap.Messages) < 2 || len(snap.Messages[1].Text) < 200 {
				return false
			}
		}
		return true
	})

	victim := masters[0]
	start := time.Now()
	promoted := failover(victim)
	tookOver := time.Since(start)
	clusterWait(t, "a subscription on the new master", func() bool {
		return len(pubsubClients(t, promoted)) == 1
	})
	resubscribed := time.Since(start)

	results := views.wait(t)
	converged := time.Since(start)
	checkViews(t, a, convs, results)
	for i, conv := range convs {
		snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
		if err != nil {
			t.Fatal(err)
		}
		m := snap.Messages[1]
		want := a.Model.Reply([]llm.Message{{Role: llm.RoleUser, Content: "long question for " + masters[i]}})
		switch {
		case m.Status == store.StatusDone && m.Text == want:
		case lossless:
			t.Errorf("conversation on %s: status %s, stored answer differs from the model's reply (%d of %d bytes)", masters[i], m.Status, len(m.Text), len(want))
		case m.Status == store.StatusStreaming:
			t.Errorf("conversation on %s still streaming", masters[i])
		default:
			// Writes the replica had not received are gone from Redis; the
			// viewers were brought to what Redis kept (checked above).
			t.Logf("conversation on %s ended %s with %d of the model's %d bytes (writes lost with the master)", masters[i], m.Status, len(m.Text), len(want))
		}
	}

	// One connection per master now, none left anywhere else.
	now := c.Masters(t)
	for _, m := range now {
		if n := len(pubsubClients(t, m)); n != 1 {
			t.Errorf("master %s has %d subscription connections, want 1", m, n)
		}
	}
	for _, addr := range c.Addrs() {
		if srv := c.Server(addr); !slices.Contains(now, addr) && srv != nil {
			if cl, err := testredis.Command(addr, "CLIENT", "LIST", "TYPE", "PUBSUB"); err == nil && strings.TrimSpace(cl.(string)) != "" {
				t.Errorf("non-master %s still has subscription connections:\n%s", addr, cl)
			}
		}
	}
	var stall time.Duration
	for _, r := range results[0] { // the viewers of the conversation on the victim
		stall = max(stall, r.stall)
	}
	t.Logf("master %s -> %s: replica in charge after %v, hub subscribed there after %v, every viewer converged after %v; longest pause between frames for a viewer of that shard %v; resyncs %d, probe failures %d",
		victim, promoted, tookOver.Round(time.Millisecond), resubscribed.Round(time.Millisecond),
		converged.Round(time.Millisecond), stall.Round(time.Millisecond), a.Hub.Stats().Resyncs, a.Hub.Stats().ProbeFailures)
}

// clusterCreate starts a conversation whose keys live on master, as the home
// form does.
func clusterCreate(t *testing.T, a *app, c *testredis.Cluster, master, text string) string {
	t.Helper()
	for range 10000 {
		// The server chooses IDs: take home pages' offers until one names
		// an ID that lands on master.
		offer, id := a.offer(t, a.Client)
		if c.MasterFor(t, store.Channel(id)) != master {
			continue
		}
		res, err := a.Client.PostForm(a.URL+"/c", map[string][]string{"conv": {offer}, "text": {text}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("create: status %d", res.StatusCode)
		}
		return id
	}
	t.Fatalf("no conversation ID lands on %s", master)
	return ""
}

// viewResult is what one viewer ended with.
type viewResult struct {
	dom   *viewer.DOM
	err   error
	stall time.Duration // longest wait between two frames
}

type viewSet struct {
	wg      sync.WaitGroup
	results [][]viewResult // by conversation, then viewer
}

// followAll attaches n viewers to each conversation; half of them drop their
// stream now and then and come back with their last event ID, as the
// browser does.
func followAll(ctx context.Context, t *testing.T, a *app, convs []string, n int) *viewSet {
	t.Helper()
	vs := &viewSet{results: make([][]viewResult, len(convs))}
	for ci, conv := range convs {
		vs.results[ci] = make([]viewResult, n)
		for vi := range n {
			seed := uint64(ci*100 + vi)
			vs.wg.Go(func() {
				vs.results[ci][vi] = follow(ctx, a, conv, 1, vi%2 == 1, seed)
			})
		}
	}
	return vs
}

func (vs *viewSet) wait(t *testing.T) [][]viewResult {
	t.Helper()
	vs.wg.Wait()
	return vs.results
}

// checkViews compares every viewer's page with a fresh page of its
// conversation: equal means no gap and no duplicate.
func checkViews(t *testing.T, a *app, convs []string, results [][]viewResult) {
	t.Helper()
	for ci, conv := range convs {
		fresh, _ := a.page(t, conv)
		want := fresh.HTML("messages")
		for vi, r := range results[ci] {
			if r.err != nil {
				t.Errorf("conversation %d, viewer %d: %v", ci, vi, r.err)
				continue
			}
			if got := r.dom.HTML("messages"); got != want {
				t.Errorf("conversation %d, viewer %d ended with a different page:\n got %s\nwant %s", ci, vi, got, want)
			}
		}
	}
}

// follow is one viewer of message i of conv, like the browser: it loads the
// page, follows the stream, and whenever the stream ends or cannot be opened
// (a 503 while Redis fails over, say) comes back with the ID of the last
// frame it applied. With drops it also ends streams on purpose now and then.
func follow(ctx context.Context, a *app, conv string, i int, drops bool, seed uint64) viewResult {
	rng := rand.New(rand.NewPCG(seed, 5))
	var (
		d      *viewer.DOM
		res    viewResult
		header string
		after  string
		last   = time.Now()
	)
	pause := func() error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w (last error: %v)", ctx.Err(), res.err)
		case <-time.After(200 * time.Millisecond):
			return nil
		}
	}
	for d == nil {
		got, cursor, err := clusterPage(ctx, a, conv)
		if err == nil {
			d, after = got, cursor
			break
		}
		res.err = err
		if err := pause(); err != nil {
			return viewResult{err: err}
		}
	}
	res.err = nil
	for !done(d.Status(i)) {
		url := a.URL + "/c/" + conv + "/events"
		if after != "" {
			url += "?after=" + after
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Datastar-Request", "true")
		if header != "" {
			req.Header.Set("Last-Event-ID", header)
		}
		resp, err := a.Client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			if err == nil {
				err = fmt.Errorf("events: status %d", resp.StatusCode)
				resp.Body.Close()
			}
			if ctx.Err() != nil {
				return viewResult{err: fmt.Errorf("stream never finished: %w", err)}
			}
			if err := pause(); err != nil {
				return viewResult{err: err}
			}
			continue
		}
		dropAfter := -1
		if drops {
			dropAfter = 3 + rng.IntN(20)
		}
		frames := 0
		var applyErr error
		_ = readSSE(resp.Body, func(ev sseEvent) bool {
			if ev.Comment {
				return true
			}
			if err := d.Apply(ev.Fragments()); err != nil {
				applyErr = fmt.Errorf("frame %s: %w", ev.ID, err)
				return false
			}
			now := time.Now()
			res.stall = max(res.stall, now.Sub(last))
			last = now
			if ev.ID != "" {
				header = ev.ID
			}
			frames++
			return !done(d.Status(i)) && frames != dropAfter
		})
		resp.Body.Close()
		if applyErr != nil {
			return viewResult{err: applyErr}
		}
		after = "" // the reconnect's Last-Event-ID wins from now on
	}
	res.dom = d
	return res
}

// clusterPage loads a conversation page without failing the test, so a
// viewer can try again while Redis fails over.
func clusterPage(ctx context.Context, a *app, conv string) (*viewer.DOM, string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv, nil)
	res, err := a.Client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil, "", fmt.Errorf("page: status %d", res.StatusCode)
	}
	d, err := viewer.ParseDOM(res.Body)
	if err != nil {
		return nil, "", err
	}
	return d, d.Cursor(), nil
}

// pubsubClients lists the connections in pub/sub mode on the node at addr.
func pubsubClients(t *testing.T, addr string) []string {
	t.Helper()
	reply, err := testredis.Command(addr, "CLIENT", "LIST", "TYPE", "PUBSUB")
	if err != nil {
		t.Fatalf("CLIENT LIST on %s: %v", addr, err)
	}
	s, _ := reply.(string)
	var out []string
	for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l+" ")
		}
	}
	return out
}

func clusterWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
