package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/html"

	iviewer "github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/store"
)

// scenario is one measured situation. Kind picks the driver: "stream" (answers
// streamed to viewers who join before, during and after them), "idle"
// (viewers connected to finished answers), "page" (loading a long page).
type scenario struct {
	Name   string
	Title  string
	Target string
	Kind   string

	Convs   int     // conversations, each with one measured answer
	Viewers int     // viewers per conversation
	Tokens  int     // tokens of the measured answer
	TPS     float64 // its pace
	Prose   int     // every Prose-th token is a clock word (1: all)

	During    float64 // share of viewers who join while the answer streams
	After     float64 // ... once it has ended
	Reconnect float64 // ... who join before and drop their stream once mid-answer
	Slow      float64 // ... who join before and read slowly

	// Late joiners (stream kind): Joiners viewers connect without a cursor,
	// one every JoinEvery, once JoinAt tokens have been written, and time
	// their first (full) frame.
	JoinAt    int
	Joiners   int
	JoinEvery time.Duration

	Messages int // page kind: messages in the conversation
	Requests int // page kind: page loads timed

	Grace time.Duration // how long past the answer's end to wait for viewers
}

func (s scenario) clockWords() int { return (s.Tokens + s.Prose - 1) / s.Prose }

func (s scenario) answerDuration() time.Duration {
	return time.Duration(float64(s.Tokens) / s.TPS * float64(time.Second))
}

func (s scenario) prompt() string {
	return fmt.Sprintf("measure tokens=%d tps=%s prose=%d", s.Tokens, fmtFloat(s.TPS), s.Prose)
}

// scenarios are the targets of issue 5, in its order.
func scenarios() []scenario {
	mixed := func(s scenario) scenario {
		s.During, s.After, s.Reconnect, s.Slow = 0.10, 0.05, 0.05, 0.02
		return s
	}
	return []scenario{
		mixed(scenario{Name: "fanout-1k", Kind: "stream", Title: "1 answer at 100 tokens/s, 1,000 viewers",
			Target: "p99 token-to-viewer <= 50 ms, zero gaps/duplicates; naive: Parley >= 10x lower p99 and CPU",
			Convs:  1, Viewers: 1000, Tokens: 500, TPS: 100, Prose: 1, Grace: 60 * time.Second}),
		mixed(scenario{Name: "fanout-5k", Kind: "stream", Title: "1 answer at 100 tokens/s, 5,000 viewers",
			Target: "p99 <= 150 ms", Convs: 1, Viewers: 5000, Tokens: 500, TPS: 100, Prose: 1, Grace: 90 * time.Second}),
		mixed(scenario{Name: "answers-200", Kind: "stream", Title: "200 answers at 50 tokens/s, 5 viewers each",
			Target: "p99 <= 50 ms, server CPU <= 1 core", Convs: 200, Viewers: 5, Tokens: 300, TPS: 50, Prose: 1, Grace: 60 * time.Second}),
		{Name: "idle-10k", Kind: "idle", Title: "10,000 idle connected viewers",
			Target: "<= 20 KiB RSS per viewer", Convs: 100, Viewers: 100, Tokens: 100, TPS: 10000, Prose: 1},
		{Name: "redis", Kind: "stream", Title: "Redis work per answer (1,000 tokens at 100 tokens/s, 10 viewers)",
			Target: "<= 1 round trip per coalesced batch; one subscription connection per process",
			Convs:  1, Viewers: 10, Tokens: 1000, TPS: 100, Prose: 1, Grace: 30 * time.Second},
		{Name: "late-join", Kind: "stream", Title: "late join into a 5,000-token answer",
			Target: "first full frame <= 20 ms (p99)", Convs: 1, Viewers: 5, Tokens: 6000, TPS: 500, Prose: 1,
			JoinAt: 5000, Joiners: 100, JoinEvery: 15 * time.Millisecond, Grace: 30 * time.Second},
		{Name: "sse-bytes", Kind: "stream", Title: "SSE bytes per viewer, 2,000-token Markdown answer",
			Target: "<= 3x the final rendered HTML", Convs: 1, Viewers: 10, Tokens: 2000, TPS: 100, Prose: 8, Grace: 30 * time.Second},
		{Name: "page-200", Kind: "page", Title: "GET /c/{id} with 200 messages",
			Target: "<= 2 ms server time p50", Tokens: 150, TPS: 100000, Prose: 8, Messages: 200, Requests: 400},
	}
}

// runner holds what every scenario run needs.
type runner struct {
	dump    string // where to write what inexact viewers received, "" for nowhere
	profile string // where to write the server's CPU profiles, "" for nowhere
	log     io.Writer
	prog    *progress
	rng     *rand.Rand
	gzip    bool // viewers accept gzip
}

// person is one browser: its own cookies (its own owner identity).
func newPerson() *http.Client {
	jar, _ := cookiejar.New(nil) // New never fails without options
	c := newHTTPClient(0)
	c.Jar = jar
	return c
}

var (
	homeOffer   = regexp.MustCompile(`name="conv" value="([a-z2-7]{26}\.[0-9]+\.[A-Za-z0-9_-]+)"`)
	composerKey = regexp.MustCompile(`name="key" value="([a-z2-7]{26})"`)
)

// createConv opens the home page and posts its form, as a person does, and
// returns the ID of the conversation, read from the redirect to it.
func createConv(ctx context.Context, base string, client *http.Client, text string) (string, error) {
	form := url.Values{"text": {text}}
	// The form's offer (the server's signed choice of ID, for this browser).
	// The naive server has no home page: without one the server chooses.
	if home, err := getPage(ctx, client, base+"/"); err == nil {
		if m := homeOffer.FindSubmatch(home); m != nil {
			form.Set("conv", string(m[1]))
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/c", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	res, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("create conversation: %w", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("create conversation: status %d: %.300s", res.StatusCode, body)
	}
	id, ok := strings.CutPrefix(res.Header.Get("Location"), "/c/")
	if !ok || !store.ValidConversationID(id) {
		return "", fmt.Errorf("create conversation: redirected to %q", res.Header.Get("Location"))
	}
	return id, nil
}

// postMessage sends the composer's form the way the page's Datastar client
// does, retrying while the previous answer still runs (409).
func postMessage(ctx context.Context, base string, client *http.Client, conv, text string) error {
	key := store.NewID()
	if page, err := getPage(ctx, client, base+"/c/"+conv); err == nil {
		if m := composerKey.FindSubmatch(page); m != nil {
			key = string(m[1])
		}
	}
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/c/"+conv+"/messages",
			strings.NewReader(url.Values{"text": {text}, "key": {key}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Datastar-Request", "true")
		req.Header.Set("Origin", base)
		res, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("post message: %w", err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch {
		case res.StatusCode == http.StatusOK:
			return nil
		case res.StatusCode == http.StatusConflict && attempt < 2000:
			if !sleepUntil(ctx, time.Now().Add(10*time.Millisecond)) {
				return ctx.Err()
			}
		default:
			return fmt.Errorf("post message: status %d: %.300s", res.StatusCode, body)
		}
	}
}

// waitEnded polls the page until answer i has ended.
func waitEnded(ctx context.Context, base string, client *http.Client, c *conv, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		page, err := getPage(ctx, client, base+"/c/"+c.id)
		if err == nil {
			if st, ok := c.endStatus(page); ok && st != "streaming" {
				if st != store.StatusDone {
					return fmt.Errorf("answer %d of %s ended %s", c.answer, c.id, st)
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("answer %d of %s did not end within %s (last error: %v)", c.answer, c.id, timeout, err)
		}
		if !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// setup creates n conversations whose first answer (a short one) has ended,
// each owned by its own person.
func setupConvs(ctx context.Context, base string, n int, measured scenario) ([]*conv, error) {
	convs := make([]*conv, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range convs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			client := newPerson()
			id, err := createConv(ctx, base, client, "warm up tokens=20 tps=10000 prose=1000")
			if err != nil {
				errs[i] = err
				return
			}
			first := newConv(id, 1, 1, client)
			if err := waitEnded(ctx, base, client, first, 30*time.Second); err != nil {
				errs[i] = err
				return
			}
			convs[i] = newConv(id, 3, measured.clockWords(), client)
		})
	}
	wg.Wait()
	return convs, errors.Join(errs...)
}

// plan decides who joins when, with a fixed seed so runs are comparable.
func (r *runner) plan(s scenario, convs []*conv) []*viewer {
	var vs []*viewer
	d := s.answerDuration()
	for _, c := range convs {
		for range s.Viewers {
			v := &viewer{conv: c, kind: joinBefore}
			switch x := r.rng.Float64(); {
			case x < s.During:
				v.kind = joinDuring
				v.joinAfter = time.Duration(r.rng.Float64() * float64(d))
			case x < s.During+s.After:
				v.kind = joinAfter
			case x < s.During+s.After+s.Reconnect:
				v.cutAfter = time.Duration((0.1 + 0.8*r.rng.Float64()) * float64(d))
			case x < s.During+s.After+s.Reconnect+s.Slow:
				v.slow = true
			}
			vs = append(vs, v)
		}
	}
	return vs
}

// joinResult is one late joiner's measurements.
type joinResult struct {
	firstFrame time.Duration // request sent to the first frame read in full
	frameBytes int
	page       time.Duration
	full       bool // the first frame held the whole answer
	err        error
}

// runStream drives the stream kind on t and returns its measurements.
func (r *runner) runStream(ctx context.Context, s scenario, t *target) (*result, error) {
	res := newResult(s, t.name)
	r.prog.phase("creating conversations")
	convs, err := setupConvs(ctx, t.url, s.Convs, s)
	if err != nil {
		return nil, err
	}
	e := newEnv(t.url, &r.prog.c, r.gzip)
	viewers := r.plan(s, convs)
	r.prog.expect(len(viewers), s.Convs*s.clockWords())

	// A few viewers keep their raw stream, to estimate what per-connection
	// compression would save.
	recorded := 0
	for _, v := range viewers {
		if recorded < 5 && v.kind == joinBefore && v.cutAfter == 0 && !v.slow {
			v.raw = &bytes.Buffer{}
			recorded++
		}
	}
	vctx, stopViewers := context.WithCancel(ctx)
	defer stopViewers()
	var wg sync.WaitGroup
	var opened atomic.Int64
	sem := make(chan struct{}, 200) // connections being set up at once
	nBefore := 0
	for _, v := range viewers {
		before := v.kind == joinBefore
		if before {
			nBefore++
		}
		wg.Go(func() {
			var once sync.Once
			release := func() {}
			if before {
				sem <- struct{}{}
				release = func() { once.Do(func() { <-sem }) }
			}
			defer release()
			v.run(vctx, e, func() { opened.Add(1); release() })
		})
	}
	r.prog.phase("connecting viewers")
	connectStart := time.Now()
	if err := waitFor(ctx, 5*time.Minute, func() bool { return opened.Load() >= int64(nBefore) }); err != nil {
		return nil, fmt.Errorf("%d of %d viewers connected before the answer: %w", opened.Load(), nBefore, err)
	}
	res.add("connect_s", "time to connect the viewers who join first", "s", time.Since(connectStart).Seconds(), lower)
	sleepUntil(ctx, time.Now().Add(time.Second)) // let presence and joins settle

	cpu0, rcpu0 := t.serverCPU(ctx)
	rs0, _ := readRedis(ctx, t.rdb)
	rt0 := t.roundTrips(ctx)
	xlen0 := logLengths(ctx, t, convs)
	own0 := ownCPU()
	h0 := scrapeHistograms(ctx, t.metricsURL)
	smp := t.sample(ctx, 100*time.Millisecond)

	r.prog.phase("answering")
	postStart := time.Now()
	waitProfile := t.profile(ctx, s.answerDuration(), r.profilePath(s, t))
	defer waitProfile()
	var posts sync.WaitGroup
	postErrs := make([]error, len(convs))
	for i, c := range convs {
		c.postAt = time.Now()
		close(c.posted)
		posts.Go(func() { postErrs[i] = postMessage(ctx, t.url, c.client, c.id, s.prompt()) })
	}
	joins := r.lateJoins(ctx, s, e, convs[0])
	posts.Wait()
	if err := errors.Join(postErrs...); err != nil {
		return nil, err
	}
	// If no viewer of a conversation sees its end (they all failed), the
	// page still tells when it ended, so that late viewers are not left waiting.
	for _, c := range convs {
		go func() {
			if sleepUntil(vctx, c.postAt.Add(s.answerDuration())) {
				_ = waitEnded(vctx, t.url, c.client, c, s.Grace)
				c.markDone(time.Now())
			}
		}()
	}
	deadline := s.answerDuration() + s.Grace
	total := int64(len(viewers))
	waitErr := waitFor(ctx, deadline, func() bool {
		return r.prog.c.done.Load() >= total && opened.Load() >= total
	})
	jr := joins()
	sleepUntil(ctx, time.Now().Add(300*time.Millisecond)) // frames still on the wire
	end := time.Now()

	cpu1, rcpu1 := t.serverCPU(ctx)
	rs1, rerr := readRedis(ctx, t.rdb)
	rt1 := t.roundTrips(ctx)
	xlen1 := logLengths(ctx, t, convs)
	own1 := ownCPU()
	h1 := scrapeHistograms(ctx, t.metricsURL)
	smp.finish()
	stopViewers()
	wg.Wait()

	r.prog.phase("checking exactness")
	finals, err := finalAnswers(ctx, t.url, convs)
	if err != nil {
		return nil, err
	}
	verdicts := checkAll(viewers, finals, r.dump)

	// Latency and delivery.
	var lat, slowLat []int32
	var censored, unfinished, tokens, frames, signals, breaks int
	var lastFrame time.Time
	var fullBytes, decodedBytes []float64
	for i, v := range viewers {
		if v.slow {
			slowLat = append(slowLat, v.lat...)
		} else {
			lat = append(lat, v.lat...)
			if !v.sawEnd {
				censored += max(0, v.conv.tokens-1-int(v.maxSeq))
			}
		}
		if !v.sawEnd {
			unfinished++
		}
		tokens += v.tokens
		frames += v.events
		signals += v.signals
		breaks += v.breaks
		if v.lastFrame.After(lastFrame) {
			lastFrame = v.lastFrame
		}
		if v.kind == joinBefore && v.cutAfter == 0 && !v.slow && v.sawEnd && verdicts[i].Exact {
			fullBytes = append(fullBytes, float64(v.bytes))
			decodedBytes = append(decodedBytes, float64(v.decoded))
		}
	}
	window := lastFrame.Sub(postStart).Seconds()
	if window <= 0 {
		window = end.Sub(postStart).Seconds()
	}
	res.addLatency("latency", "token-to-viewer latency", lat, censored)
	if s.Slow > 0 {
		p := percentiles(slowLat, 0)
		res.add("slow_latency_p99_ms", "slow readers: latency p99", "ms", p.P99, lower)
	}
	if p50, n := h1.quantile(h0, "parley_token_to_frame_seconds", 0.5); n > 0 {
		p99, _ := h1.quantile(h0, "parley_token_to_frame_seconds", 0.99)
		res.add("server_t2f_p50_ms", "server's own token-to-frame-written p50 (bucket bound, /metrics)", "ms", p50*1000, lower)
		res.add("server_t2f_p99_ms", "server's own token-to-frame-written p99 (bucket bound)", "ms", p99*1000, lower)
	}
	if p50, n := h1.quantile(h0, "parley_redis_duration_seconds/evalsha", 0.5); n > 0 {
		p99, _ := h1.quantile(h0, "parley_redis_duration_seconds/evalsha", 0.99)
		res.add("redis_evalsha_p50_ms", "Redis script round trip p50 as the server sees it (bucket bound)", "ms", p50*1000, lower)
		res.add("redis_evalsha_p99_ms", "Redis script round trip p99 (bucket bound)", "ms", p99*1000, lower)
	}
	res.add("tokens_per_s", "tokens delivered to viewers per second", "/s", float64(tokens)/window, higher)
	res.add("frames_per_s", "frames delivered to viewers per second", "/s", float64(frames)/window, info)
	res.add("signal_events", "other events (signals: busy, presence)", "", float64(signals), info)
	res.add("sse_bytes_per_viewer", "SSE bytes on the wire per viewer per answer (joined before, read all)", "B", mean(fullBytes), lower)
	htmlBytes := 0.0
	for _, f := range finals {
		htmlBytes += float64(len(f.html))
	}
	htmlBytes /= float64(len(finals))
	res.add("answer_html_bytes", "final rendered answer HTML", "B", htmlBytes, info)
	var gz []float64
	for _, v := range viewers {
		if v.raw != nil && v.sawEnd && v.breaks == 0 {
			gz = append(gz, float64(compressedSize(v.raw.Bytes())))
		}
	}
	if len(gz) > 0 && htmlBytes > 0 {
		res.add("sse_gzip_ratio", "if each stream had its own gzip writer (level 1, flushed per event): bytes / final HTML", "x", mean(gz)/htmlBytes, lower)
	}
	if htmlBytes > 0 && len(fullBytes) > 0 {
		res.add("sse_bytes_ratio", "SSE bytes on the wire per viewer / final answer HTML", "x", mean(fullBytes)/htmlBytes, lower)
		res.add("sse_decoded_ratio", "SSE bytes after gzip decoding per viewer / final answer HTML", "x", mean(decodedBytes)/htmlBytes, lower)
	}
	res.addExactness(verdicts, unfinished, breaks)
	if jr != nil {
		res.addJoins(jr)
	}

	res.add("server_cpu_s", "server CPU", "s", cpu1-cpu0, lower)
	res.add("server_cores", "server CPU / wall time", "cores", (cpu1-cpu0)/end.Sub(postStart).Seconds(), lower)
	if tokens > 0 {
		res.add("server_cpu_us_per_token", "server CPU per token delivered to a viewer", "µs", (cpu1-cpu0)*1e6/float64(tokens), lower)
	}
	if t.redisPID != 0 {
		res.add("redis_cpu_s", "redis-server CPU", "s", rcpu1-rcpu0, lower)
	}
	res.add("loadgen_cpu_s", "load generator CPU (same machine)", "s", own1-own0, info)
	res.addSamples(smp)
	answers := float64(len(convs))
	entries := float64(xlen1-xlen0) / answers
	if t.counter != nil {
		trips, n := diffCalls(rt1, rt0)
		res.add("redis_trips_per_answer", "Redis round trips per answer (all the server sent)", "", float64(n)/answers, lower)
		res.add("redis_trips_per_token", "Redis round trips per token", "", float64(n)/answers/float64(s.Tokens), lower)
		res.add("log_entries_per_answer", "log entries (batches) per answer", "", entries, info)
		if entries > 0 {
			res.add("redis_trips_per_batch", "Redis round trips per batch (everything, viewers' reads too)", "", float64(n)/answers/entries, lower)
			// The append script is the one called about once per log
			// entry (each batch is one entry; a post and an end add one
			// each): scripts are known to the counter by SHA only.
			want := float64(xlen1 - xlen0)
			appends, best := 0.0, math.Inf(1)
			for name, c := range trips {
				if d := math.Abs(float64(c) - want); strings.HasPrefix(name, "evalsha:") && d < best {
					appends, best = float64(c), d
				}
			}
			res.add("redis_appends_per_batch", "append script calls per log entry (one round trip per batch)", "", appends/answers/entries, lower)
		}
		res.Redis = trips
	}
	if rerr == nil && t.rdb != nil {
		_, n := rs1.diff(rs0)
		res.add("redis_cmds_per_answer", "Redis commands run per answer (INFO commandstats, incl. inside scripts)", "", float64(n)/answers, lower)
		res.add("redis_subscribers", "Redis subscription connections", "", float64(rs1.Subscribers), lower)
	}
	res.add("wall_s", "answer phase, post to last frame", "s", window, info)
	if waitErr != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("stopped waiting after %s: %d of %d viewers saw the end", deadline, r.prog.c.done.Load(), total))
	}
	return res, nil
}

// lateJoins starts the late joiners of s (if any) and returns a function that
// waits for them.
func (r *runner) lateJoins(ctx context.Context, s scenario, e *env, c *conv) func() []joinResult {
	if s.Joiners == 0 {
		return func() []joinResult { return nil }
	}
	out := make([]joinResult, s.Joiners)
	var wg sync.WaitGroup
	at := c.postAt.Add(time.Duration(float64(s.JoinAt) / s.TPS * float64(time.Second)))
	for i := range out {
		wg.Go(func() {
			if !sleepUntil(ctx, at.Add(time.Duration(i)*s.JoinEvery)) {
				return
			}
			out[i] = joinOnce(ctx, e, c)
		})
	}
	return func() []joinResult { wg.Wait(); return out }
}

// joinOnce opens the stream with no cursor, as a page whose cursor is
// unknown or trimmed does, and times the first frame (the whole conversation);
// then it times loading the page.
func joinOnce(ctx context.Context, e *env, c *conv) joinResult {
	var jr joinResult
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/c/"+c.id+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Datastar-Request", "true")
	start := time.Now()
	res, err := e.client.Do(req)
	if err != nil {
		jr.err = err
		return jr
	}
	sr := iviewer.NewSSEReader(res.Body)
	for {
		ev, err := sr.Next()
		if err != nil {
			jr.err = err
			break
		}
		if ev.Event == iviewer.EventMergeFragments {
			fragments := ev.AppendFragments(nil)
			jr.firstFrame = time.Since(start)
			jr.frameBytes = len(fragments)
			_, jr.full = c.endStatus(fragments)
			break
		}
	}
	cancel()
	res.Body.Close()
	start = time.Now()
	if _, err := getPage(context.WithoutCancel(ctx), e.client, e.base+"/c/"+c.id); err == nil {
		jr.page = time.Since(start)
	}
	return jr
}

// finalAnswer is a conversation's answer as stored, from a fresh page.
type finalAnswer struct {
	html string
}

func finalAnswers(ctx context.Context, base string, convs []*conv) (map[*conv]finalAnswer, error) {
	out := map[*conv]finalAnswer{}
	for _, c := range convs {
		page, err := getPage(ctx, c.client, base+"/c/"+c.id)
		if err != nil {
			return nil, err
		}
		d, err := iviewer.ParseDOM(bytes.NewReader(page))
		if err != nil {
			return nil, fmt.Errorf("parse the final page of %s: %w", c.id, err)
		}
		html := d.HTML(c.answerID)
		if html == "" {
			return nil, fmt.Errorf("the final page of %s has no #%s", c.id, c.answerID)
		}
		out[c] = finalAnswer{html: html}
	}
	return out, nil
}

// checkAll checks every viewer; viewers with the same page and frames (most
// of a room) are checked once.
func checkAll(viewers []*viewer, finals map[*conv]finalAnswer, dump string) []verdict {
	out := make([]verdict, len(viewers))
	memo := map[string]verdict{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	parsed := newParseCache()
	for i, v := range viewers {
		if v.page == nil {
			out[i] = verdict{Err: errString(v.err, "never loaded the page")}
			continue
		}
		var key strings.Builder
		fmt.Fprintf(&key, "%s/%d", v.conv.id, v.page.n)
		for _, f := range v.frames {
			fmt.Fprintf(&key, ",%d", f.n)
		}
		k := key.String()
		mu.Lock()
		if got, ok := memo[k]; ok {
			out[i] = got
			mu.Unlock()
			continue
		}
		mu.Unlock()
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			got := checkParsed(v.page.b, len(v.frames), func(j int) ([]*html.Node, error) { return parsed.get(v.frames[j]) },
				v.conv.answerID, finals[v.conv].html, v.conv.tokens)
			if dump != "" && !(got.Exact && got.Gaps == 0 && got.Dups == 0 && got.Err == "") {
				frames := make([][]byte, len(v.frames))
				for j, f := range v.frames {
					frames[j] = f.b
				}
				dumpViewer(dump, i, v, frames, finals[v.conv].html, got)
			}
			mu.Lock()
			memo[k] = got
			out[i] = got
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func errString(err error, def string) string {
	if err != nil {
		return err.Error()
	}
	return def
}

// logLengths sums the lengths of the conversations' logs (docs/redis.md:
// "{c:ID}:log"), whose entries are the batches the generations wrote.
func logLengths(ctx context.Context, t *target, convs []*conv) int64 {
	if t.rdb == nil {
		return 0
	}
	var n int64
	for _, c := range convs {
		n += t.rdb.XLen(ctx, "{c:"+c.id+"}:log").Val()
	}
	return n
}

// runIdle connects viewers to finished answers and measures what they cost.
func (r *runner) runIdle(ctx context.Context, s scenario, t *target) (*result, error) {
	res := newResult(s, t.name)
	r.prog.phase("creating conversations")
	convs, err := setupConvs(ctx, t.url, s.Convs, s)
	if err != nil {
		return nil, err
	}
	for i, c := range convs { // the measured answer is the first one, ended
		convs[i] = newConv(c.id, 1, 1, c.client)
		convs[i].markDone(time.Now())
	}
	e := newEnv(t.url, &r.prog.c, r.gzip)
	var viewers []*viewer
	for _, c := range convs {
		for range s.Viewers {
			viewers = append(viewers, &viewer{conv: c, kind: joinBefore})
		}
	}
	r.prog.expect(len(viewers), 0)
	sleepUntil(ctx, time.Now().Add(2*time.Second))
	before := procOrMetrics(ctx, t)
	cpu0, _ := t.serverCPU(ctx)

	r.prog.phase("connecting viewers")
	vctx, stopViewers := context.WithCancel(ctx)
	defer stopViewers()
	var wg sync.WaitGroup
	var opened atomic.Int64
	sem := make(chan struct{}, 200)
	start := time.Now()
	for _, v := range viewers {
		wg.Go(func() {
			var once sync.Once
			sem <- struct{}{}
			release := func() { once.Do(func() { <-sem }) }
			defer release()
			v.run(vctx, e, func() { opened.Add(1); release() })
		})
	}
	if err := waitFor(ctx, 2*time.Minute, func() bool { return opened.Load() >= int64(len(viewers)) }); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// Measure what did connect: a server out of file descriptors (the
		// naive one needs two per viewer) is a result too.
		res.Notes = append(res.Notes, fmt.Sprintf("only %d of %d viewers could connect within 2 minutes", opened.Load(), len(viewers)))
	}
	connect := time.Since(start)
	r.prog.phase("idle")
	sleepUntil(ctx, time.Now().Add(5*time.Second))
	after := procOrMetrics(ctx, t)
	cpu1, _ := t.serverCPU(ctx)
	n := float64(max(opened.Load(), 1))
	res.add("viewers", "viewers connected", "", float64(opened.Load()), info)
	res.add("connect_s", "time to connect them all", "s", connect.Seconds(), lower)
	res.add("rss_before_mb", "server RSS before", "MiB", before.rss/(1<<20), info)
	res.add("rss_after_mb", "server RSS with the viewers", "MiB", after.rss/(1<<20), lower)
	res.add("rss_per_viewer_kib", "server RSS per viewer", "KiB", (after.rss-before.rss)/n/1024, lower)
	if after.goroutines > 0 {
		res.add("goroutines_per_viewer", "goroutines per viewer", "", (after.goroutines-before.goroutines)/n, lower)
		res.add("stack_per_viewer_kib", "of which goroutine stacks per viewer (Go memstats)", "KiB", (after.stack-before.stack)/n/1024, lower)
		res.add("heap_per_viewer_kib", "of which heap in use per viewer (Go memstats)", "KiB", (after.heap-before.heap)/n/1024, lower)
	}
	if t.pprofURL != "" && r.profile != "" {
		for _, kind := range []string{"heap", "goroutine"} {
			fetchProfile(ctx, t.pprofURL+"/"+kind, filepath.Join(r.profile, s.Name+"-"+t.name+"."+kind+".pprof"))
		}
	}
	res.add("threads", "server threads", "", float64(after.threads), info)
	res.add("server_cpu_s", "server CPU while connecting and idling", "s", cpu1-cpu0, lower)
	if rs, err := readRedis(ctx, t.rdb); err == nil {
		res.add("redis_clients", "Redis client connections", "", float64(rs.Clients), lower)
		res.add("redis_subscribers", "Redis subscription connections", "", float64(rs.Subscribers), lower)
	}
	stopViewers()
	wg.Wait()
	finals, err := finalAnswers(ctx, t.url, convs)
	if err != nil {
		return nil, err
	}
	unfinished := 0
	for _, v := range viewers {
		if !v.sawEnd {
			unfinished++
		}
	}
	res.addExactness(checkAll(viewers, finals, r.dump), unfinished, 0)
	return res, nil
}

type usage struct {
	rss, goroutines float64
	stack, heap     float64
	threads         int
}

func procOrMetrics(ctx context.Context, t *target) usage {
	var u usage
	if t.pid != 0 {
		if p, err := readProc(t.pid); err == nil {
			u.rss, u.threads = float64(p.RSS), p.Threads
		}
	}
	if t.metricsURL != "" {
		if p := scrape(ctx, t.metricsURL); p != nil {
			u.goroutines, u.stack, u.heap = p.Goroutines, p.Stack, p.Heap
			if u.rss == 0 {
				u.rss = p.RSS
			}
		}
	}
	return u
}

// runPage builds a conversation of s.Messages messages and times loading it.
func (r *runner) runPage(ctx context.Context, s scenario, t *target) (*result, error) {
	res := newResult(s, t.name)
	r.prog.phase("writing the conversation")
	client := newPerson()
	text := fmt.Sprintf("next tokens=%d tps=%s prose=%d", s.Tokens, fmtFloat(s.TPS), s.Prose)
	id, err := createConv(ctx, t.url, client, text)
	if err != nil {
		return nil, err
	}
	r.prog.expect(s.Messages/2, 0)
	for i := 1; i < s.Messages/2; i++ {
		if err := postMessage(ctx, t.url, client, id, text); err != nil {
			return nil, err
		}
		r.prog.c.done.Add(1)
	}
	last := newConv(id, s.Messages-1, 1, client)
	if err := waitEnded(ctx, t.url, client, last, 30*time.Second); err != nil {
		return nil, err
	}
	r.prog.phase("loading the page")
	r.prog.expect(s.Requests, 0)
	r.prog.c.done.Store(0)
	times := make([]int32, 0, s.Requests)
	var size int
	cpu0, _ := t.serverCPU(ctx)
	waitProfile := t.profile(ctx, 3*time.Second, r.profilePath(s, t))
	defer waitProfile()
	for range s.Requests {
		start := time.Now()
		page, err := getPage(ctx, client, t.url+"/c/"+id)
		if err != nil {
			return nil, err
		}
		times = append(times, int32(time.Since(start).Microseconds()))
		size = len(page)
		r.prog.c.done.Add(1)
	}
	cpu1, _ := t.serverCPU(ctx)
	p := percentiles(times, 0)
	res.add("page_p50_ms", "page load p50 (client-side, loopback)", "ms", p.P50, lower)
	res.add("page_p90_ms", "page load p90", "ms", p.P90, lower)
	res.add("page_p99_ms", "page load p99", "ms", p.P99, lower)
	res.add("page_cpu_ms", "server CPU per page", "ms", (cpu1-cpu0)*1000/float64(s.Requests), lower)
	res.add("page_bytes", "page size", "B", float64(size), info)
	return res, nil
}

func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		if !sleepUntil(ctx, time.Now().Add(50*time.Millisecond)) {
			return ctx.Err()
		}
	}
	return nil
}

// ownCPU is this process's CPU seconds so far.
func ownCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// latencyStats are percentiles in milliseconds.
type latencyStats struct {
	P50, P90, P99, Max float64
	N                  int
}

// percentiles of micros (microseconds), where censored more samples are
// known to be larger than any (never delivered): they sort last, as +Inf.
func percentiles(micros []int32, censored int) latencyStats {
	s := slices.Clone(micros)
	slices.Sort(s)
	n := len(s) + censored
	at := func(q float64) float64 {
		if n == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(q*float64(n))) - 1
		i = max(i, 0)
		if i >= len(s) {
			return math.Inf(1)
		}
		return float64(s[i]) / 1000
	}
	out := latencyStats{P50: at(0.50), P90: at(0.90), P99: at(0.99), N: len(s)}
	switch {
	case censored > 0:
		out.Max = math.Inf(1)
	case len(s) > 0:
		out.Max = float64(s[len(s)-1]) / 1000
	default:
		out.Max = math.NaN()
	}
	return out
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var t float64
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}

// dumpViewer writes what an inexact viewer received, for a person to read:
// its page, its frames in order, and the answer it should have ended with.
func dumpViewer(dir string, i int, v *viewer, frames [][]byte, want string, got verdict) {
	var b strings.Builder
	fmt.Fprintf(&b, "viewer %d (%s, cut after %s, slow %v): %+v\n\n=== want\n%s\n\n=== page\n%s\n", i, v.kind, v.cutAfter, v.slow, got, want, v.page.b)
	for j, f := range frames {
		fmt.Fprintf(&b, "\n=== frame %d\n%s\n", j, f)
	}
	_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("viewer-%s-%d.txt", v.conv.id, i)), []byte(b.String()), 0o644)
}

// roundTrips is the count of commands the server sent to Redis, by name.
func (t *target) roundTrips(ctx context.Context) map[string]int64 {
	if t.counter == nil {
		return nil
	}
	return t.counter.counts(ctx)
}

// diffCalls is after minus before, per command, with the total.
func diffCalls(after, before map[string]int64) (map[string]int64, int64) {
	d := map[string]int64{}
	var total int64
	for k, v := range after {
		if n := v - before[k]; n > 0 {
			d[k] = n
			total += n
		}
	}
	return d, total
}

func (r *runner) profilePath(s scenario, t *target) string {
	if r.profile == "" {
		return ""
	}
	return filepath.Join(r.profile, s.Name+"-"+t.name+".cpu.pprof")
}

// parseCache parses each distinct frame once for the whole check: a room's
// viewers all received the same frames.
type parseCache struct {
	mu sync.Mutex
	m  map[int32]*parsedFrame
}

type parsedFrame struct {
	once  sync.Once
	nodes []*html.Node
	err   error
}

func newParseCache() *parseCache { return &parseCache{m: map[int32]*parsedFrame{}} }

func (c *parseCache) get(b *blob) ([]*html.Node, error) {
	c.mu.Lock()
	p := c.m[b.n]
	if p == nil {
		p = &parsedFrame{}
		c.m[b.n] = p
	}
	c.mu.Unlock()
	p.once.Do(func() { p.nodes, p.err = iviewer.ParseFragments(b.b) })
	return p.nodes, p.err
}

// compressedSize is the size of an event stream sent through one gzip
// writer (BestSpeed) flushed after every event, as a server compressing each
// connection would send it.
func compressedSize(stream []byte) int {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed) // a valid level never fails
	for len(stream) > 0 {
		i := bytes.Index(stream, []byte("\n\n"))
		if i < 0 {
			i = len(stream) - 2
		}
		_, _ = zw.Write(stream[:i+2])
		_ = zw.Flush()
		stream = stream[i+2:]
	}
	_ = zw.Close()
	return out.Len()
}

// fetchProfile saves one of the server's profiles (heap, goroutine) to path.
func fetchProfile(ctx context.Context, u, path string) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		_ = os.WriteFile(path, b, 0o644)
	}
}
