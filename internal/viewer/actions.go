package viewer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"github.com/parley-chat/parley/store"
)

// Response is an action's answer: its status, body and Location header.
type Response struct {
	Status   int
	Body     string
	Location string
}

// NewClient returns an HTTP client that acts as one browser: it keeps its
// cookies (for every process on the loopback address: cookies ignore the
// port), does not follow redirects (an action's 303 is its answer) and keeps
// many connections per host.
func NewClient() *http.Client {
	jar, _ := cookiejar.New(nil) // New never fails without options
	return &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 1000},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Create starts a conversation with a first message, as an API client does
// (the home form without its offer: the server chooses the ID), and returns
// its ID, read from the redirect to the conversation.
func Create(ctx context.Context, client *http.Client, base, text string) (string, error) {
	res, err := do(ctx, client, base+"/c", url.Values{"text": {text}}, false)
	if err != nil {
		return "", err
	}
	if res.Status != http.StatusSeeOther {
		return "", fmt.Errorf("create: status %d: %s", res.Status, res.Body)
	}
	id, ok := strings.CutPrefix(res.Location, "/c/")
	if !ok || !store.ValidConversationID(id) {
		return "", fmt.Errorf("create: redirected to %q, not to a conversation", res.Location)
	}
	return id, nil
}

// Post sends the next message from the conversation page's composer.
func Post(ctx context.Context, client *http.Client, base, conv, text string) (Response, error) {
	return do(ctx, client, base+"/c/"+conv+"/messages", url.Values{"text": {text}, "key": {store.NewID()}}, true)
}

// Stop presses Stop on the conversation page.
func Stop(ctx context.Context, client *http.Client, base, conv string) (Response, error) {
	return do(ctx, client, base+"/c/"+conv+"/stop", url.Values{}, true)
}

func do(ctx context.Context, client *http.Client, u string, form url.Values, datastar bool) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", u, strings.NewReader(form.Encode()))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if datastar {
		req.Header.Set("Datastar-Request", "true")
	}
	res, err := client.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("POST %s: %w", u, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Response{}, fmt.Errorf("POST %s: read answer: %w", u, err)
	}
	return Response{Status: res.StatusCode, Body: string(body), Location: res.Header.Get("Location")}, nil
}
