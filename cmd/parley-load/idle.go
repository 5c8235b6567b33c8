package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

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
	start := time.Now()
	c := startViewers(vctx, e, viewers)
	opened := &c.opened
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
	res.add("viewers", "viewers connected", "", float64(opened.Load()), info)
	res.add("connect_s", "time to connect them all", "s", connect.Seconds(), lower)
	res.addMemory(before, after, float64(max(opened.Load(), 1)))
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
	c.wg.Wait()
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

// addMemory adds the server's memory before and after n viewers connected.
func (res *result) addMemory(before, after usage, n float64) {
	res.add("rss_before_mb", "server RSS before", "MiB", before.rss/(1<<20), info)
	res.add("rss_after_mb", "server RSS with the viewers", "MiB", after.rss/(1<<20), lower)
	res.add("rss_per_viewer_kib", "server RSS per viewer", "KiB", (after.rss-before.rss)/n/1024, lower)
	if after.goroutines > 0 {
		res.add("goroutines_per_viewer", "goroutines per viewer", "", (after.goroutines-before.goroutines)/n, lower)
		res.add("stack_per_viewer_kib", "of which goroutine stacks per viewer (Go memstats)", "KiB", (after.stack-before.stack)/n/1024, lower)
		res.add("heap_per_viewer_kib", "of which heap in use per viewer (Go memstats)", "KiB", (after.heap-before.heap)/n/1024, lower)
	}
}

// usage is the server's memory, threads and goroutines at one moment.
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
