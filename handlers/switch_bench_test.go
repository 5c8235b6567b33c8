package handlers_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// BenchmarkVersionSwitch measures what showing another version of a message
// costs a room of viewers (issue 13). The conversation has 20 messages on
// each of two branches (its first question edited), and two versions of the
// last answer on each. Every viewer follows the live stream; the owner
// switches versions, alternately at the last answer (the path's smallest
// suffix) and at position 0 (the whole path), and each switch waits until
// every viewer has read the frame that carries it. Per switch it reports the
// body bytes each viewer read for it (compressed, on a gzip stream) and the
// time from just before Switch to each viewer having the frame. page-again
// is the design a switch replaces: every viewer loads the page again, all at
// once.
//
//	go test -run '^$' -bench VersionSwitch -benchtime 20x ./handlers/
//
// With -short (CI's benchmark smoke) the room has 10 viewers, not 1,000.
func BenchmarkVersionSwitch(b *testing.B) {
	viewers := 1000
	if testing.Short() {
		viewers = 10
	}
	a := newApp(b, func(c *appConfig) {
		c.demo = llm.DemoConfig{TokensPerSecond: 100_000, Tokens: 350}
		// The server's defaults (internal/config, app.go), which the test
		// app leaves off: a crowded room spaces its frames, and gzip
		// streams send a frame per flush.
		c.hub.RoomWritesPerSecond = 50_000
		c.hub.WriteTimeout = 30 * time.Second
		c.gen.FrameBudget = 0
		c.hub.MaxViewers = viewers + 100
		c.limits.ViewersPerAddress = 0 // every viewer is 127.0.0.1
	})
	tree := newVersionTree(b, a)
	for _, gz := range []bool{true, false} {
		b.Run(map[bool]string{true: "gzip", false: "plain"}[gz], func(b *testing.B) {
			c := joinCrowd(b, a, tree.conv, viewers, gz)
			defer c.leave()
			b.Run("switch", func(b *testing.B) { benchSwitches(b, a, tree, c) })
			b.Run("page-again", func(b *testing.B) { benchPageAgain(b, a, tree.conv, c) })
		})
	}
}

// versionTree is the benchmark's conversation and the versions it shows.
type versionTree struct {
	conv, owner string
	last        int      // the last answer's position
	path        int      // the version shown at position 0: 1 as asked, 2 edited
	shown       [3]int   // by path: the version shown at its last answer
	logged      store.ID // the log's last ID after the last switch
}

// benchQuestions are the conversation's questions; the edited branch asks
// them again, worded differently, so its answers differ too.
var benchQuestions = [10]string{
	"How do I read a large file line by line in Go?",
	"What is the difference between a buffered and an unbuffered channel?",
	"How should I structure errors in a library?",
	"When is a sync.Pool worth it?",
	"How do I cancel a goroutine that is blocked on I/O?",
	"What does the race detector catch, and what does it miss?",
	"How do I write a table-driven test for a parser?",
	"Why does my HTTP server leak goroutines?",
	"How do I profile a service that is slow only under load?",
	"What is a good way to version a JSON API?",
}

// newVersionTree writes the conversation: ten questions answered by the demo
// model (about 350 pieces each, with a code block), a second version of the
// last answer, then the first question edited and the edited branch asked
// the other nine again, with a second version of its last answer too.
func newVersionTree(b *testing.B, a *app) *versionTree {
	conv := a.create(b, benchQuestions[0])
	a.waitStatus(b, conv, 1, store.StatusDone)
	meta, err := a.Store.Meta(context.Background(), conv)
	if err != nil {
		b.Fatal(err)
	}
	v := &versionTree{conv: conv, owner: meta.Owner, last: 2*len(benchQuestions) - 1, path: 2, shown: [3]int{0, 2, 2}}
	v.askRest(b, a, "")
	v.regenerateLast(b, a)
	asker := generation.Asker{Owner: v.owner, Addr: "192.0.2.1"}
	edit := generation.Edit{Asker: asker, Conv: conv, Index: 0, Text: "In other words: " + benchQuestions[0], Key: store.NewID(),
		Rev: a.waitStatus(b, conv, 0, store.StatusDone).Rev}
	if err := a.Gen.Edit(context.Background(), edit); err != nil {
		b.Fatalf("edit the first question: %v", err)
	}
	a.waitStatus(b, conv, 1, store.StatusDone)
	v.askRest(b, a, "In other words: ")
	v.regenerateLast(b, a)
	snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
	if err != nil {
		b.Fatal(err)
	}
	v.logged = snap.Last
	return v
}

// askRest posts questions 2..10 from the composer, each once the answer
// before it is done.
func (v *versionTree) askRest(b *testing.B, a *app, prefix string) {
	for i, q := range benchQuestions[1:] {
		if res := a.post(b, v.conv, url.QueryEscape(prefix+q), store.NewID()); res.StatusCode != http.StatusOK {
			b.Fatalf("post question %d: status %d", i+2, res.StatusCode)
		}
		a.waitStatus(b, v.conv, 2*i+3, store.StatusDone)
	}
}

// regenerateLast adds a second version of the last answer. The demo model
// gives the same question the same answer, so this one is written through
// the store as a generation would, with the demo's answer to another
// wording: two versions then differ as a regeneration's do.
func (v *versionTree) regenerateLast(b *testing.B, a *app) {
	ctx := context.Background()
	last := a.waitStatus(b, v.conv, v.last, store.StatusDone)
	gen := store.NewID()
	started, err := a.Store.Regenerate(ctx, store.Regen{Conv: v.conv, Owner: v.owner, Gen: gen, Index: v.last, Rev: last.Rev, Model: a.Model.Name()})
	if err != nil || !started {
		b.Fatalf("regenerate the last answer: started %t, %v", started, err)
	}
	text := a.Model.Reply([]llm.Message{{Role: llm.RoleUser, Content: "Once more: " + benchQuestions[len(benchQuestions)-1]}})
	if _, err := a.Store.Append(ctx, store.AppendCall{Conv: v.conv, Gen: gen, Text: text}); err != nil {
		b.Fatal(err)
	}
	if err := a.Store.Finish(ctx, store.Ending{Conv: v.conv, Gen: gen, Status: store.StatusDone}); err != nil {
		b.Fatal(err)
	}
}

// next is the i-th switch: even ones at the last answer, odd ones at
// position 0 (to the other branch).
func (v *versionTree) next(i int) store.Switch {
	w := store.Switch{Conv: v.conv, Owner: v.owner}
	if i%2 == 0 {
		v.shown[v.path] = 3 - v.shown[v.path]
		w.Index, w.Version = v.last, v.shown[v.path]
		return w
	}
	v.path = 3 - v.path
	w.Index, w.Version = 0, v.path
	return w
}

// switchCosts gathers what one kind of switch cost its viewers.
type switchCosts struct {
	switches int
	bytes    int64           // read by all viewers, for all switches
	took     []time.Duration // one per viewer and switch
}

// report adds the costs to the benchmark's output, each metric's unit
// prefixed by the kind of switch.
func (s *switchCosts) report(b *testing.B, kind string, viewers int) {
	if s.switches == 0 {
		return
	}
	b.ReportMetric(float64(s.bytes)/float64(s.switches*viewers), kind+"-B/viewer")
	reportLatency(b, kind+"-", s.took)
}

// reportLatency reports the p50, p99 and max of took, in milliseconds.
func reportLatency(b *testing.B, prefix string, took []time.Duration) {
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(took[len(took)/2]), prefix+"p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), prefix+"p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), prefix+"max-ms")
}

// benchSwitches switches versions b.N times and waits for each switch's
// frame at every viewer; then viewer 0's page must equal a fresh one.
func benchSwitches(b *testing.B, a *app, v *versionTree, c *crowd) {
	ctx := context.Background()
	var atEnd, atStart switchCosts
	for i := range b.N {
		// People do not switch 30 times a second: a switch comes after the
		// room's frame spacing (20 ms for 1,000 viewers) has passed, so it
		// measures the switch, not the spacing of back-to-back frames.
		b.StopTimer()
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
		w := v.next(i)
		costs := &atEnd
		if w.Index == 0 {
			costs = &atStart
		}
		start := time.Now()
		if err := a.Store.Switch(ctx, w); err != nil {
			b.Fatalf("switch %+v: %v", w, err)
		}
		// The switch's branch event, or anything after it: viewers wait
		// for the frame whose id reaches it.
		snap, err := a.Store.Snapshot(ctx, v.conv, store.ID{})
		if err != nil {
			b.Fatal(err)
		}
		if !v.logged.Less(snap.Last) {
			b.Fatalf("switch %+v logged nothing: it showed the version already shown", w)
		}
		v.logged = snap.Last
		c.await(b, snap.Last, start, costs)
		costs.switches++
	}
	b.StopTimer()
	atEnd.report(b, "end", len(c.viewers))
	atStart.report(b, "start", len(c.viewers))
	c.checkPage(b, a)
}

// benchPageAgain has every viewer load the page again, all at once, b.N
// times, and reports the bytes of each page's body (compressed when gzip)
// and the time from the start of the round to each viewer having it all.
func benchPageAgain(b *testing.B, a *app, conv string, c *crowd) {
	var (
		took  []time.Duration
		bytes int64
	)
	for range b.N {
		loads := make([]pageLoad, len(c.viewers))
		var wg sync.WaitGroup
		start := time.Now()
		for i := range loads {
			wg.Go(func() { loads[i] = c.loadPage(a.URL+"/c/"+conv, start) })
		}
		wg.Wait()
		for _, l := range loads {
			if l.err != nil {
				b.Fatal(l.err)
			}
			took, bytes = append(took, l.took), bytes+l.bytes
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(bytes)/float64(len(took)), "B/viewer")
	reportLatency(b, "", took)
}

// pageLoad is one viewer's load of the page.
type pageLoad struct {
	bytes int64         // body bytes on the wire
	took  time.Duration // from the round's start to the last byte
	err   error
}

func (c *crowd) loadPage(u string, start time.Time) pageLoad {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Accept-Encoding", c.encoding())
	res, err := c.pages.Do(req)
	if err != nil {
		return pageLoad{err: fmt.Errorf("load page: %w", err)}
	}
	defer res.Body.Close()
	n, err := io.Copy(io.Discard, res.Body)
	l := pageLoad{bytes: n, took: time.Since(start), err: err}
	if gz := res.Header.Get("Content-Encoding") == "gzip"; res.StatusCode != http.StatusOK || gz != c.gzip {
		l.err = fmt.Errorf("page: status %d, Content-Encoding %q for a client that accepts gzip: %t", res.StatusCode, res.Header.Get("Content-Encoding"), c.gzip)
	}
	return l
}

// crowd is a room of viewers, each on its own connection to the live
// stream. Viewer 0 also applies every frame to its page.
type crowd struct {
	conv    string
	viewers []*switchViewer
	gzip    bool
	streams *http.Client // the viewers' streams
	pages   *http.Client // the viewers' page loads (page-again)
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// switchViewer is one viewer of a crowd.
type switchViewer struct {
	wire wireCounter // the body as it comes off the connection

	mu   sync.Mutex
	seen []seenFrame // frames with an id since the last switch measured
	base int64       // wire bytes up to the last switch measured
	err  error
	dom  *viewer.DOM // viewer 0's page; nil for the others
}

// seenFrame is a frame a viewer read: its id, when, and the wire bytes read
// by then.
type seenFrame struct {
	id   store.ID
	at   time.Time
	wire int64
}

// wireCounter counts the bytes read through it; the coordinator reads the
// count while the viewer reads the stream.
type wireCounter struct {
	r io.Reader
	n atomic.Int64
}

func (w *wireCounter) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.n.Add(int64(n))
	return n, err
}

func (c *crowd) encoding() string {
	if c.gzip {
		return "gzip"
	}
	return "identity"
}

// joinCrowd loads the page once and opens n streams from its cursor, then
// waits for the presence frames that the joins cause to pass.
func joinCrowd(b *testing.B, a *app, conv string, n int, gz bool) *crowd {
	ctx, cancel := context.WithCancel(context.Background())
	// The clients decode nothing themselves (DisableCompression), so the
	// counts are of the bytes on the wire; they send no cookies, as the
	// load tool's viewers (a stream then carries no sidebar).
	c := &crowd{conv: conv, gzip: gz, cancel: cancel,
		streams: &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: n}},
		pages:   &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: n}}}
	dom, err := viewer.Page(ctx, c.streams, a.URL, conv)
	if err != nil {
		b.Fatal(err)
	}
	u := a.URL + "/c/" + conv + "/events?after=" + dom.Cursor()
	// A few joins at a time, so that the crowd joins rather than
	// stampedes; the join is not what is measured.
	sem := make(chan struct{}, 32)
	errs := make(chan error, n)
	var joins sync.WaitGroup
	for i := range n {
		v := &switchViewer{}
		if i == 0 {
			v.dom = dom
		}
		c.viewers = append(c.viewers, v)
		sem <- struct{}{}
		joins.Go(func() {
			defer func() { <-sem }()
			body, err := c.open(ctx, u, &v.wire)
			if err != nil {
				errs <- fmt.Errorf("viewer %d: %w", i, err)
				return
			}
			c.wg.Go(func() { v.read(ctx, body) })
		})
	}
	joins.Wait()
	close(errs)
	if err := <-errs; err != nil {
		c.leave()
		b.Fatal(err)
	}
	c.settle(b)
	return c
}

// open starts one stream and returns its body, read through wire.
func (c *crowd) open(ctx context.Context, u string, wire *wireCounter) (io.ReadCloser, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	req.Header.Set("Datastar-Request", "true")
	req.Header.Set("Accept-Encoding", c.encoding())
	res, err := c.streams.Do(req)
	if err != nil {
		return nil, err
	}
	if gz := res.Header.Get("Content-Encoding") == "gzip"; res.StatusCode != http.StatusOK || gz != c.gzip {
		res.Body.Close()
		return nil, fmt.Errorf("events: status %d, Content-Encoding %q for a client that accepts gzip: %t", res.StatusCode, res.Header.Get("Content-Encoding"), c.gzip)
	}
	wire.r = res.Body
	var body io.Reader = wire
	if c.gzip {
		if body, err = gzip.NewReader(wire); err != nil {
			res.Body.Close()
			return nil, err
		}
	}
	return struct {
		io.Reader
		io.Closer
	}{body, res.Body}, nil
}

// read parses the stream until it ends, noting each frame that has an id.
func (v *switchViewer) read(ctx context.Context, body io.ReadCloser) {
	defer body.Close()
	sr := viewer.NewSSEReader(body)
	var fragments []byte
	for {
		f, err := sr.Next()
		at := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				v.fail(fmt.Errorf("stream ended: %w", err))
			}
			return
		}
		v.mu.Lock()
		if v.dom != nil && !f.Comment {
			fragments = f.AppendFragments(fragments[:0])
			if err := v.dom.Apply(string(fragments)); err != nil {
				v.err = fmt.Errorf("frame %s: %w", f.ID, err)
			}
		}
		if f.ID != "" {
			id, err := store.ParseID(f.ID)
			if err != nil {
				v.err = fmt.Errorf("frame id %q: %w", f.ID, err)
			}
			v.seen = append(v.seen, seenFrame{id: id, at: at, wire: v.wire.n.Load()})
		}
		v.mu.Unlock()
	}
}

func (v *switchViewer) fail(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err == nil {
		v.err = err
	}
}

// reached returns the first frame seen whose id is target or later, and
// any error of the viewer's.
func (v *switchViewer) reached(target store.ID) (seenFrame, bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, f := range v.seen {
		if !f.id.Less(target) {
			return f, true, v.err
		}
	}
	return seenFrame{}, false, v.err
}

// settle waits until no viewer has read anything for 3 s (the joins'
// presence frames have passed: a room of 1,000 reports its count every
// 2.75 s at most), then starts counting from there.
func (c *crowd) settle(b *testing.B) {
	total := func() (n int64) {
		for _, v := range c.viewers {
			n += v.wire.n.Load()
		}
		return n
	}
	deadline := time.Now().Add(time.Minute)
	last, since := total(), time.Now()
	for time.Since(since) < 3*time.Second {
		if time.Now().After(deadline) {
			b.Fatal("the streams never went quiet after the viewers joined")
		}
		time.Sleep(100 * time.Millisecond)
		if n := total(); n != last {
			last, since = n, time.Now()
		}
	}
	for i, v := range c.viewers {
		v.mu.Lock()
		v.seen, v.base = v.seen[:0], v.wire.n.Load()
		err := v.err
		v.mu.Unlock()
		if err != nil {
			b.Fatalf("viewer %d: %v", i, err)
		}
	}
}

// await waits until every viewer has read a frame whose id reaches target,
// and adds what each read since the switch before and how long it waited to
// costs.
func (c *crowd) await(b *testing.B, target store.ID, start time.Time, costs *switchCosts) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		waiting := 0
		for i, v := range c.viewers {
			_, ok, err := v.reached(target)
			if err != nil {
				b.Fatalf("viewer %d: %v", i, err)
			}
			if !ok {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d viewers never got the frame of the switch (id %s)", waiting, len(c.viewers), target)
		}
		time.Sleep(time.Millisecond)
	}
	for _, v := range c.viewers {
		f, _, _ := v.reached(target)
		v.mu.Lock()
		costs.bytes += f.wire - v.base
		costs.took = append(costs.took, f.at.Sub(start))
		v.seen, v.base = v.seen[:0], f.wire
		v.mu.Unlock()
	}
}

// checkPage fails the benchmark unless viewer 0, which applied every frame,
// shows what a fresh load of the page shows.
func (c *crowd) checkPage(b *testing.B, a *app) {
	fresh, err := viewer.Page(context.Background(), c.pages, a.URL, c.conv)
	if err != nil {
		b.Fatal(err)
	}
	v := c.viewers[0]
	v.mu.Lock()
	got := v.dom.HTML("messages")
	v.mu.Unlock()
	if want := fresh.HTML("messages"); got != want {
		b.Fatalf("the viewer that applied every frame shows another page than a fresh load:\n%s", viewer.Diff(want, got))
	}
}

// leave closes every stream and waits for the viewers to stop.
func (c *crowd) leave() {
	c.cancel()
	c.wg.Wait()
	c.streams.CloseIdleConnections()
	c.pages.CloseIdleConnections()
}
