package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/metrics"
)

// TestRedisHookLabelsAreBounded: hot-path commands get their own series,
// anything else is "other" and a pipeline is one "pipeline" round trip, so
// no command a caller sends can add a series.
func TestRedisHookLabelsAreBounded(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	m := metrics.New()
	rdb.AddHook(m.RedisHook())
	ctx := context.Background()
	// The client's connection setup (HELLO and the like) is counted too;
	// count from after it.
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	labels := []string{"evalsha", "eval", "other", "pipeline"}
	before := map[string]int{}
	for _, cmd := range labels {
		before[cmd] = histogramCount(t, m, "parley_redis_duration_seconds", `command="`+cmd+`"`)
	}

	script := redis.NewScript(`return 1`)
	for range 3 {
		if err := script.Run(ctx, rdb, nil).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rdb.Set(ctx, "k", "v", time.Minute)
	rdb.Get(ctx, "k")
	pipe := rdb.Pipeline()
	pipe.Get(ctx, "k")
	pipe.Get(ctx, "k")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	// The first run of a script is EVALSHA (refused: not loaded), then EVAL.
	// go-redis may set up another connection meanwhile (HELLO, CLIENT
	// SETINFO in a pipeline), which counts as other and pipeline too.
	want := map[string]int{"evalsha": 3, "eval": 1, "other": 2, "pipeline": 1}
	exact := map[string]bool{"evalsha": true, "eval": true}
	for _, cmd := range labels {
		got := histogramCount(t, m, "parley_redis_duration_seconds", `command="`+cmd+`"`) - before[cmd]
		if got < want[cmd] || exact[cmd] && got != want[cmd] {
			t.Errorf("%s: %d round trips, want %d", cmd, got, want[cmd])
		}
	}
	out := scrape(t, m)
	for _, cmd := range []string{"get", "set", "hello", "client"} {
		if strings.Contains(out, `parley_redis_duration_seconds_count{command="`+cmd+`"}`) {
			t.Errorf("%s, outside the bounded set, has a series of its own", cmd)
		}
	}
}

// TestGenerationsAndLatency: the generation gauge follows starts and ends,
// each outcome has a series from the start, and an unknown outcome is not a
// new series.
func TestGenerationsAndLatency(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.GenerationStarted()
	m.GenerationStarted()
	m.GenerationEnded("done")
	m.GenerationEnded("something new")
	m.TokenToFrame(30 * time.Millisecond)
	m.TokenToFrame(-time.Millisecond) // clocks of two processes disagree

	out := scrape(t, m)
	for _, line := range []string{
		"parley_generations_running 0",
		`parley_generations_ended_total{outcome="done"} 1`,
		`parley_generations_ended_total{outcome="interrupted"} 1`,
		`parley_generations_ended_total{outcome="stopped"} 0`,
		`parley_generations_ended_total{outcome="failed"} 0`,
		"parley_token_to_frame_seconds_count 2",
		`parley_token_to_frame_seconds_bucket{le="0.001"} 1`,
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %q", line)
		}
	}
	if strings.Contains(out, "something new") {
		t.Error("an unknown outcome became a series")
	}
}

// TestHubStatsAreReadAtScrape: the hub's counters appear as they are when
// scraped.
func TestHubStatsAreReadAtScrape(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	stats := live.Stats{Viewers: 7, Rooms: 2, Frames: 5, FramesWritten: 30, BytesWritten: 4096, FastForwards: 1, Dropped: 3}
	m.RegisterHub(func() live.Stats { return stats })
	out := scrape(t, m)
	for _, line := range []string{
		"parley_viewers_connected 7", "parley_rooms 2", "parley_frames_rendered_total 5",
		"parley_frames_written_total 30", "parley_written_bytes_total 4096",
		"parley_viewers_fast_forwarded_total 1", "parley_viewers_dropped_total 3",
		"parley_room_resyncs_total 0", "parley_subscription_probe_failures_total 0",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("missing %q", line)
		}
	}
	stats.Viewers = 0
	if out := scrape(t, m); !strings.Contains(out, "parley_viewers_connected 0\n") {
		t.Error("the gauge did not follow the hub")
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
	}
	if !found["go_goroutines"] || !found["process_cpu_seconds_total"] {
		t.Error("the Go runtime and process collectors are missing")
	}
}

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", res.Status)
	}
	return string(body)
}

// histogramCount is the _count of the series of name with label.
func histogramCount(t *testing.T, m *metrics.Metrics, name, label string) int {
	t.Helper()
	prefix := name + "_count{" + label + "} "
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("bad count in %q", line)
			}
			return n
		}
	}
	return -1
}

// TestProviderUp: the gauge follows the last call to the model provider.
func TestProviderUp(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	for _, up := range []bool{true, false, true} {
		m.ProviderUp(up)
		want := "parley_model_provider_up 0\n"
		if up {
			want = "parley_model_provider_up 1\n"
		}
		if out := scrape(t, m); !strings.Contains(out, want) {
			t.Errorf("after ProviderUp(%v): missing %q", up, want)
		}
	}
}
