package e2e_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/viewer"
	"github.com/parley-chat/parley/store"
)

// TestZeroConfig runs the binary as the README's first command does: with
// an empty environment (no REDIS_URL, no keys, no model settings; flags only
// for free ports, as tests run side by side). It must start on its embedded
// Redis with the demo model, and a message sent from the home page's form
// must get an answer that arrives whole on the conversation's live stream.
func TestZeroConfig(t *testing.T) {
	t.Parallel()
	app := harness.Exec(t, bin, "parley", []string{"-addr", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0"}, map[string]string{})
	if logs := app.Logs(); !strings.Contains(logs, "embedded in-memory Redis") || !strings.Contains(logs, "(model: demo)") {
		t.Fatalf("the app did not say it runs on its embedded Redis with the demo model:\n%s", logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := viewer.NewClient() // a browser: a cookie jar, redirects as answers

	// The home page's form, as a browser without JavaScript sends it: its
	// hidden offer of an ID and the text, multipart.
	res, err := client.Get(app.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	home, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`<input type="hidden" name="conv" value="([^"]+)"`).FindSubmatch(home)
	if res.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("home page: status %d, no offer of an ID in its form:\n%s", res.StatusCode, home)
	}
	var body bytes.Buffer
	form := multipart.NewWriter(&body)
	_ = form.WriteField("conv", string(m[1]))
	_ = form.WriteField("text", "Does Parley run with no configuration?")
	_ = form.Close()
	req, _ := http.NewRequestWithContext(ctx, "POST", app.URL+"/c", &body)
	req.Header.Set("Content-Type", form.FormDataContentType())
	res, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	conv, ok := strings.CutPrefix(res.Header.Get("Location"), "/c/")
	if res.StatusCode != http.StatusSeeOther || !ok || !store.ValidConversationID(conv) {
		t.Fatalf("the form post: status %d, redirected to %q", res.StatusCode, res.Header.Get("Location"))
	}

	// The conversation page and its live stream, until the answer ends.
	v, err := viewer.Load(ctx, client, app.URL, conv)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Follow(ctx, viewer.HasEnded(1), viewer.Options{}); err != nil {
		t.Fatalf("follow the live stream: %v (%s)", err, v.Summary())
	}
	if got := v.Status(1); got != store.StatusDone || v.Text(1) == "" {
		t.Fatalf("the answer on the live stream ended %q with %d characters, want done and some text", got, len(v.Text(1)))
	}
	sameAsFresh(t, client, app.URL, conv, []*viewer.Viewer{v})
}
