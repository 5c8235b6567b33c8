package e2e_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/store"
)

// TestMetricsFollowAnAnswer runs the app with its metrics listener, has one
// viewer watch an answer from start to end, and scrapes /metrics: the series
// an operator watches must have moved (viewers, frames and bytes, the ended
// generation, Redis round trips, token-to-frame latency), and the public
// port must not serve them.
func TestMetricsFollowAnAnswer(t *testing.T) {
	t.Parallel()
	app, base, _ := launch(t, harness.Speed{TPS: 40, Tokens: 120}, "")
	scrapeURL := app.MetricsURL

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(base+"/c", url.Values{"text": {"hello metrics"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}
	page := base + res.Header.Get("Location")

	req, _ := http.NewRequest("GET", page+"/events", nil)
	req.Header.Set("Datastar-Request", "true")
	stream, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(stream.Body)) }()

	// One refusal, counted by its reason.
	long := url.Values{"text": {strings.Repeat("x", 40<<10)}, "key": {store.NewID()}}
	res, err = client.PostForm(page+"/messages", long)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a long message: %d", res.StatusCode)
	}

	// While the viewer is connected, and once the answer has ended and
	// reached it.
	want := []struct {
		series string
		ok     func(float64) bool
	}{
		{"parley_viewers_connected", eq(1)},
		{"parley_rooms", eq(1)},
		{"parley_generations_running", eq(0)},
		{`parley_generations_ended_total{outcome="done"}`, eq(1)},
		{`parley_generations_ended_total{outcome="failed"}`, eq(0)},
		{"parley_frames_rendered_total", gt(0)},
		{"parley_frames_written_total", gt(1)},
		{"parley_written_bytes_total", gt(1000)},
		{`parley_redis_duration_seconds_count{command="evalsha"}`, gt(0)},
		{"parley_token_to_frame_seconds_count", gt(0)},
		{"parley_viewers_dropped_total", eq(0)},
		{`parley_refusals_total{reason="too_large"}`, eq(1)},
		{`parley_refusals_total{reason="posts_address"}`, eq(0)},
		{"go_goroutines", gt(0)},
		{"process_resident_memory_bytes", gt(0)},
	}
	var last map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = scrape(t, scrapeURL)
		var missing []string
		for _, w := range want {
			if v, ok := last[w.series]; !ok || !w.ok(v) {
				missing = append(missing, fmt.Sprintf("%s = %v (present %v)", w.series, v, ok))
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics did not reach their values:\n%s", strings.Join(missing, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mean := last["parley_token_to_frame_seconds_sum"] / last["parley_token_to_frame_seconds_count"]
	if mean <= 0 || mean > 10 {
		t.Errorf("mean token-to-frame latency %v s is not a latency", mean)
	}
	t.Logf("one answer, one viewer: %v frames rendered, %v written (%v bytes), %v token-to-frame samples (mean %.1f ms), %v EVALSHA round trips",
		last["parley_frames_rendered_total"], last["parley_frames_written_total"], last["parley_written_bytes_total"],
		last["parley_token_to_frame_seconds_count"], mean*1000, last[`parley_redis_duration_seconds_count{command="evalsha"}`])

	stream.Body.Close()
	deadline = time.Now().Add(30 * time.Second)
	for scrape(t, scrapeURL)["parley_viewers_connected"] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the viewer that left is still counted")
		}
		time.Sleep(50 * time.Millisecond)
	}

	res, err = client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("the public port answers /metrics with %d", res.StatusCode)
	}
}

func eq(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
func gt(min float64) func(float64) bool  { return func(v float64) bool { return v > min } }

// scrape reads the text exposition format into series -> value, the series
// written as exposed (name and labels).
func scrape(t *testing.T, u string) map[string]float64 {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", res.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
