package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/testredis"
)

// TestShutdownHandsOverStreamsAndEndsAnswers: on shutdown, a live stream is
// aborted rather than closed cleanly (the beta.11 client reconnects only
// after an error), and an answer that cannot finish within the bound ends as
// interrupted with its text kept, never left streaming.
func TestShutdownHandsOverStreamsAndEndsAnswers(t *testing.T) {
	t.Parallel()
	srv := testredis.Start(t)
	redisURL := srv.URL()
	_, base, shutdown := launch(t, harness.Speed{TPS: 40, Tokens: 120}, redisURL)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// [[slow]] makes the demo write 2 tokens/s: far longer than the 5 s bound.
	res, err := client.PostForm(base+"/c", url.Values{"text": {"a long one [[slow]]"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	page := base + res.Header.Get("Location")
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}

	req, _ := http.NewRequest("GET", page+"/events", nil)
	req.Header.Set("Datastar-Request", "true")
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, bufio.NewReader(stream.Body))
		ended <- err
	}()
	st := redisStore(t, srv)
	conv := strings.TrimPrefix(res.Header.Get("Location"), "/c/")
	harness.WaitUntil(t, "some text to be written", 20*time.Second, func() bool { return stored(t, st, conv, 1).Text != "" })

	start := time.Now()
	shutdown()
	t.Logf("shutdown took %v", time.Since(start))
	select {
	case err := <-ended:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("the stream ended cleanly (%v): the client would not reconnect", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived the server")
	}

	// The server is gone; read what it left in Redis through a new process.
	_, base2, _ := launch(t, harness.Speed{TPS: 40, Tokens: 120}, redisURL)
	res, err = client.Get(base2 + strings.TrimPrefix(page, base))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `data-status="interrupted"`) {
		t.Fatalf("after shutdown the answer is not interrupted:\n%s", body)
	}
}
