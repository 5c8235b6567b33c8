package main

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parley-chat/parley/metrics"
)

// TestScrape reads a real metrics endpoint: the process and Go collectors'
// values, and Parley's histograms by series and bound.
func TestScrape(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.TokenToFrame(3 * time.Millisecond)
	m.TokenToFrame(30 * time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	u := srv.URL + metrics.Path

	p := scrape(context.Background(), u)
	if p == nil || p.Goroutines < 1 || p.Heap <= 0 {
		t.Fatalf("scrape = %+v", p)
	}
	h := scrapeHistograms(context.Background(), u)
	tf := h["parley_token_to_frame_seconds"]
	if tf[.0025] != 0 || tf[.005] != 1 || tf[.05] != 2 || tf[math.Inf(1)] != 2 {
		t.Fatalf("token to frame buckets: %v", tf)
	}
	if _, ok := h["parley_redis_duration_seconds/evalsha"]; !ok {
		t.Fatalf("no Redis series by command: %v", h)
	}
	if q, n := h.quantile(histograms{}, "parley_token_to_frame_seconds", .5); q != .005 || n != 2 {
		t.Fatalf("median %v of %v, want 0.005 of 2", q, n)
	}
	if scrape(context.Background(), srv.URL+"/nothing") != nil {
		t.Fatal("a missing endpoint gave a sample")
	}
}
