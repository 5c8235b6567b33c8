package main

import (
	"context"
	"fmt"
	"time"
)

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
