package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	iviewer "github.com/parley-chat/parley/internal/viewer"
)

// joinResult is one late joiner's measurements.
type joinResult struct {
	firstFrame time.Duration // request sent to the first frame read in full
	frameBytes int
	page       time.Duration
	full       bool // the first frame held the whole answer
	err        error
}

// runStream drives the stream kind on t and returns its measurements:
// viewers connect, every conversation gets its answer, and what the viewers
// received is checked against what was stored.
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
	recordRaw(viewers, 5)
	vctx, stopViewers := context.WithCancel(ctx)
	defer stopViewers()
	c := startViewers(vctx, e, viewers)
	r.prog.phase("connecting viewers")
	connectStart := time.Now()
	if err := waitFor(ctx, 5*time.Minute, func() bool { return c.opened.Load() >= int64(c.first) }); err != nil {
		return nil, fmt.Errorf("%d of %d viewers connected before the answer: %w", c.opened.Load(), c.first, err)
	}
	res.add("connect_s", "time to connect the viewers who join first", "s", time.Since(connectStart).Seconds(), lower)
	sleepUntil(ctx, time.Now().Add(time.Second)) // let presence and joins settle

	before := t.readCosts(ctx, convs)
	smp := t.sample(ctx, 100*time.Millisecond)
	r.prog.phase("answering")
	postStart := time.Now()
	waitProfile := t.profile(ctx, s.answerDuration(), r.profilePath(s, t))
	defer waitProfile()
	joins, err := r.answer(ctx, vctx, s, t, e, convs)
	if err != nil {
		return nil, err
	}
	deadline := s.answerDuration() + s.Grace
	total := int64(len(viewers))
	waitErr := waitFor(ctx, deadline, func() bool {
		return r.prog.c.done.Load() >= total && c.opened.Load() >= total
	})
	jr := joins()
	sleepUntil(ctx, time.Now().Add(300*time.Millisecond)) // frames still on the wire
	end := time.Now()
	after := t.readCosts(ctx, convs)
	smp.finish()
	stopViewers()
	c.wg.Wait()

	r.prog.phase("checking exactness")
	finals, err := finalAnswers(ctx, t.url, convs)
	if err != nil {
		return nil, err
	}
	verdicts := checkAll(viewers, finals, r.dump)
	d := tallyViewers(viewers, verdicts)
	d.serverCPU = after.cpu - before.cpu
	window := d.lastFrame.Sub(postStart).Seconds()
	if window <= 0 {
		window = end.Sub(postStart).Seconds()
	}
	res.addDelivery(s, d, before.hist, after.hist, finals, viewers, window)
	res.addExactness(verdicts, d.unfinished, d.breaks)
	if jr != nil {
		res.addJoins(jr)
	}
	res.addCosts(s, t, before, after, end.Sub(postStart), d.tokens, len(convs))
	res.addSamples(smp)
	res.add("wall_s", "answer phase, post to last frame", "s", window, info)
	if waitErr != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("stopped waiting after %s: %d of %d viewers saw the end", deadline, r.prog.c.done.Load(), total))
	}
	return res, nil
}

// recordRaw makes up to n viewers who join first and read everything keep
// their raw stream, to estimate what per-connection compression would save.
func recordRaw(viewers []*viewer, n int) {
	for _, v := range viewers {
		if n > 0 && v.kind == joinBefore && v.cutAfter == 0 && !v.slow {
			v.raw = &bytes.Buffer{}
			n--
		}
	}
}

// crowd is the viewers of a run, running.
type crowd struct {
	wg     sync.WaitGroup
	opened atomic.Int64 // viewers whose first stream is open
	first  int          // viewers who join before the answer
}

// startViewers runs every viewer until ctx ends. Those who join first set
// up their connections at most 200 at a time.
func startViewers(ctx context.Context, e *env, viewers []*viewer) *crowd {
	c := &crowd{}
	sem := make(chan struct{}, 200)
	for _, v := range viewers {
		before := v.kind == joinBefore
		if before {
			c.first++
		}
		c.wg.Go(func() {
			var once sync.Once
			release := func() {}
			if before {
				sem <- struct{}{}
				release = func() { once.Do(func() { <-sem }) }
			}
			defer release()
			v.run(ctx, e, func() { c.opened.Add(1); release() })
		})
	}
	return c
}

// answer posts the measured message in every conversation at once and
// starts the late joiners; the function it returns waits for them. Should
// no viewer of a conversation see its answer end (they all failed), the
// page still tells when it ended, so that late viewers are not left waiting.
func (r *runner) answer(ctx, vctx context.Context, s scenario, t *target, e *env, convs []*conv) (func() []joinResult, error) {
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
	for _, c := range convs {
		go func() {
			if sleepUntil(vctx, c.postAt.Add(s.answerDuration())) {
				_ = waitEnded(vctx, t.url, c.client, c, s.Grace)
				c.markDone(time.Now())
			}
		}()
	}
	return joins, nil
}

// costs are the server's counters at one moment of a run.
type costs struct {
	cpu, redisCPU float64
	redis         redisStats
	redisErr      error
	trips         map[string]int64 // round trips, when counted
	logLen        int64
	ownCPU        float64
	hist          histograms
}

func (t *target) readCosts(ctx context.Context, convs []*conv) costs {
	var c costs
	c.cpu, c.redisCPU = t.serverCPU(ctx)
	c.redis, c.redisErr = readRedis(ctx, t.rdb)
	c.trips = t.roundTrips(ctx)
	c.logLen = logLengths(ctx, t, convs)
	c.ownCPU = ownCPU()
	c.hist = scrapeHistograms(ctx, t.metricsURL)
	return c
}

// delivery sums what the viewers of a run received.
type delivery struct {
	lat, slowLat                    []int32
	censored, unfinished            int
	tokens, frames, signals, breaks int
	lastFrame                       time.Time
	serverCPU                       float64   // seconds, over the answer phase
	fullBytes, decodedBytes         []float64 // of viewers who joined first and read all, exactly
}

func tallyViewers(viewers []*viewer, verdicts []verdict) delivery {
	var d delivery
	for i, v := range viewers {
		if v.slow {
			d.slowLat = append(d.slowLat, v.lat...)
		} else {
			d.lat = append(d.lat, v.lat...)
			if !v.sawEnd {
				d.censored += max(0, v.conv.tokens-1-int(v.maxSeq))
			}
		}
		if !v.sawEnd {
			d.unfinished++
		}
		d.tokens += v.tokens
		d.frames += v.events
		d.signals += v.signals
		d.breaks += v.breaks
		if v.lastFrame.After(d.lastFrame) {
			d.lastFrame = v.lastFrame
		}
		if v.kind == joinBefore && v.cutAfter == 0 && !v.slow && v.sawEnd && verdicts[i].Exact {
			d.fullBytes = append(d.fullBytes, float64(v.bytes))
			d.decodedBytes = append(d.decodedBytes, float64(v.decoded))
		}
	}
	return d
}

// addDelivery adds latency, rates and bytes per viewer.
func (res *result) addDelivery(s scenario, d delivery, h0, h1 histograms, finals map[*conv]finalAnswer, viewers []*viewer, window float64) {
	res.addLatency("latency", "token-to-viewer latency", d.lat, d.censored)
	if d.frames > 0 {
		// Next to the latencies: what each frame a viewer got cost the
		// server, whatever the latencies were bought with.
		res.add("server_cpu_us_per_frame", "server CPU per frame delivered to a viewer", "µs", d.serverCPU*1e6/float64(d.frames), lower)
	}
	if s.Slow > 0 {
		p := percentiles(d.slowLat, 0)
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
	res.add("tokens_per_s", "tokens delivered to viewers per second", "/s", float64(d.tokens)/window, higher)
	res.add("frames_per_s", "frames delivered to viewers per second", "/s", float64(d.frames)/window, info)
	res.add("signal_events", "other events (signals: busy, presence)", "", float64(d.signals), info)
	res.add("sse_bytes_per_viewer", "SSE bytes on the wire per viewer per answer (joined before, read all)", "B", mean(d.fullBytes), lower)
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
	if htmlBytes > 0 && len(d.fullBytes) > 0 {
		res.add("sse_bytes_ratio", "SSE bytes on the wire per viewer / final answer HTML", "x", mean(d.fullBytes)/htmlBytes, lower)
		res.add("sse_decoded_ratio", "SSE bytes after gzip decoding per viewer / final answer HTML", "x", mean(d.decodedBytes)/htmlBytes, lower)
	}
}

// addCosts adds what the answer phase (of length wall) cost the server and
// Redis, from the counters before and after it.
func (res *result) addCosts(s scenario, t *target, before, after costs, wall time.Duration, tokens, convs int) {
	cpu := after.cpu - before.cpu
	res.add("server_cpu_s", "server CPU", "s", cpu, lower)
	res.add("server_cores", "server CPU / wall time", "cores", cpu/wall.Seconds(), lower)
	if tokens > 0 {
		res.add("server_cpu_us_per_token", "server CPU per token delivered to a viewer", "µs", cpu*1e6/float64(tokens), lower)
	}
	if t.redisPID != 0 {
		res.add("redis_cpu_s", "redis-server CPU", "s", after.redisCPU-before.redisCPU, lower)
	}
	res.add("loadgen_cpu_s", "load generator CPU (same machine)", "s", after.ownCPU-before.ownCPU, info)
	// Near its GOMAXPROCS, the load generator itself is the bottleneck and
	// the latencies are partly its own.
	res.add("loadgen_cores", "load generator CPU / wall time", "cores", (after.ownCPU-before.ownCPU)/wall.Seconds(), info)
	answers := float64(convs)
	if t.counter != nil {
		res.addTrips(s, before, after, answers)
	}
	if after.redisErr == nil && t.rdb != nil {
		_, n := after.redis.diff(before.redis)
		res.add("redis_cmds_per_answer", "Redis commands run per answer (INFO commandstats, incl. inside scripts)", "", float64(n)/answers, lower)
		res.add("redis_subscribers", "Redis subscription connections", "", float64(after.redis.Subscribers), lower)
	}
}

// addTrips adds the Redis round trips the server sent, per answer, token
// and log entry.
func (res *result) addTrips(s scenario, before, after costs, answers float64) {
	entries := float64(after.logLen-before.logLen) / answers
	trips, n := diffCalls(after.trips, before.trips)
	res.add("redis_trips_per_answer", "Redis round trips per answer (all the server sent)", "", float64(n)/answers, lower)
	res.add("redis_trips_per_token", "Redis round trips per token", "", float64(n)/answers/float64(s.Tokens), lower)
	res.add("log_entries_per_answer", "log entries (batches) per answer", "", entries, info)
	if entries > 0 {
		res.add("redis_trips_per_batch", "Redis round trips per batch (everything, viewers' reads too)", "", float64(n)/answers/entries, lower)
		// The append script is the one called about once per log entry
		// (each batch is one entry; a post and an end add one each):
		// scripts are known to the counter by SHA only.
		want := float64(after.logLen - before.logLen)
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
