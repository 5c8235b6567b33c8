package handlers_test

import (
	"context"
	"github.com/parley-chat/parley/internal/viewer"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/clientaddr"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

// app is the whole server in one test process, against a private redis-server.
type app struct {
	URL   string
	Redis *testredis.Server     // nil on a cluster
	RDB   *redis.Client         // nil on a cluster
	UDB   redis.UniversalClient // RDB, or the cluster client
	Store *store.Store
	Hub   *live.Hub
	Gen   *generation.Manager
	Model *llm.Demo
	// Client is one browser: its cookie jar keeps its session, so it owns
	// the conversations it creates. NewBrowser makes another.
	Client   *http.Client
	Sessions *session.Manager
	// Deps are the server's; a test may serve them again, changed.
	Deps handlers.Deps
}

// testModels are the models the test app offers: the demo model writes
// every answer, whichever a conversation names.
type testModels []string

func (m testModels) List(context.Context) []string { return m }
func (m testModels) Allows(_ context.Context, name string) bool {
	for _, n := range m {
		if n == name {
			return true
		}
	}
	return false
}
func (m testModels) Default() string { return m[0] }

// testOwner owns conversations the tests create through the store directly.
const testOwner = "AAAAAAAAAAAAAAAAAAAAAA"

// NewBrowser returns a client with its own cookie jar: another person.
func (a *app) NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Transport:     a.Client.Transport,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type appConfig struct {
	// cluster, when set, is the Redis the app runs on instead of a private
	// redis-server: a cluster client, with sharded pub/sub (cluster_test.go).
	cluster *testredis.Cluster

	store   store.Config
	hub     live.Config
	gen     generation.Config
	demo    llm.DemoConfig
	limits  handlers.Limits
	clients clientaddr.Resolver
	// access is who may use it: open unless its Mode is set (its Key
	// defaults to a fixed test key).
	access access.Config
}

func defaultAppConfig() appConfig {
	return appConfig{
		store: store.Config{LogMaxLen: 10000, LeaseTTL: 3 * time.Second, MaxAnswerBytes: 256 << 10, IdempotencyTTL: time.Hour},
		hub: live.Config{ViewerQueue: 64, MaxViewers: 5000, Heartbeat: 15 * time.Second,
			SubscribeTimeout: 5 * time.Second, ProbeInterval: 2 * time.Second},
		gen:    generation.Config{FlushInterval: 20 * time.Millisecond, FrameBudget: 2, FrameMaxHold: 300 * time.Millisecond, MaxConcurrent: 16, LeaseTTL: 3 * time.Second, SweepInterval: 200 * time.Millisecond, MaxDuration: time.Minute},
		demo:   llm.DemoConfig{TokensPerSecond: 200, Tokens: 200},
		limits: handlers.Limits{MaxMessageBytes: 4 << 10, MaxBodyBytes: 8 << 10},
	}
}

func newApp(t testing.TB, tweak func(*appConfig)) *app {
	t.Helper()
	cfg := defaultAppConfig()
	if tweak != nil {
		tweak(&cfg)
	}
	cfg.gen.MaxAnswerBytes = cfg.store.MaxAnswerBytes // as main gives it
	var (
		srv    *testredis.Server
		single *redis.Client
		rdb    redis.UniversalClient
	)
	if cfg.cluster != nil {
		rdb = redis.NewClusterClient(&redis.ClusterOptions{Addrs: cfg.cluster.Addrs(), PoolSize: 64})
		cfg.store.Sharded = true
	} else {
		srv = testredis.Start(t)
		single = redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 64})
		rdb = single
	}
	t.Cleanup(func() { _ = rdb.Close() })

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st := store.New(rdb, cfg.store)
	md := markdown.NewRenderer()
	hub := live.NewHub(rdb, st, md, log, cfg.hub)
	model := llm.NewDemo(cfg.demo)
	gens := generation.New(st, hub, model, log, cfg.gen)

	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { _ = hub.Run(ctx); close(hubDone) }()
	go gens.RunSweeper(ctx)

	files := os.DirFS("../static")
	static, assets, err := handlers.Static(files)
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(time.Hour, []byte("test-session-key-of-at-least-32-bytes"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.access.Key == nil {
		cfg.access.Key = []byte("test-access-key-of-at-least-32-bytes")
	}
	gate, err := access.New(cfg.access)
	if err != nil {
		t.Fatal(err)
	}
	deps := handlers.Deps{
		Log: log, Store: st, Hub: hub, Gen: gens, MD: md, Assets: assets, Static: static,
		Limits: cfg.limits, Ready: st.Ping, Sessions: sessions, GzipStreams: true, Clients: cfg.clients,
		Access: gate, Guesses: access.NewGuesses(rdb),
		Models: testModels{"demo", "small"}, DefaultInstructions: "Be brief.",
	}
	ts := httptest.NewServer(handlers.NewServer(deps))
	t.Cleanup(func() {
		cancel()
		<-hubDone
		ts.CloseClientConnections()
		ts.Close()
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		gens.Shutdown(sctx)
	})
	a := &app{URL: ts.URL, Redis: srv, RDB: single, UDB: rdb, Store: st, Hub: hub, Gen: gens, Model: model, Sessions: sessions, Deps: deps,
		Client: &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 1000}}}
	a.Client = a.NewBrowser()
	return a
}

// create starts a conversation with a first message, like the home form
// without its offer (an API client): the server chooses the ID.
func (a *app) create(t testing.TB, text string) string {
	t.Helper()
	return a.createWith(t, a.Client, url.Values{"text": {text}})
}

// createWith posts the home form (plain) as browser c and returns the ID of
// the conversation it was sent to.
func (a *app) createWith(t testing.TB, c *http.Client, form url.Values) string {
	t.Helper()
	res, err := c.PostForm(a.URL+"/c", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: status %d", res.StatusCode)
	}
	return convOf(t, res.Header.Get("Location"))
}

// convOf returns the conversation ID of a redirect to its page.
func convOf(t testing.TB, location string) string {
	t.Helper()
	id, ok := strings.CutPrefix(location, "/c/")
	if !ok || !store.ValidConversationID(id) {
		t.Fatalf("redirected to %q, not to a conversation", location)
	}
	return id
}

var homeOffer = regexp.MustCompile(`name="conv" value="([^"]*)"`)

// offer opens the home page as browser c and returns its form's offer (the
// hidden "conv" field) and the conversation ID it names.
func (a *app) offer(t testing.TB, c *http.Client) (offer, id string) {
	t.Helper()
	res, err := c.Get(a.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := homeOffer.FindSubmatch(body)
	if m == nil {
		t.Fatalf("the home page (status %d) has no offer", res.StatusCode)
	}
	offer = string(m[1])
	id, _, _ = strings.Cut(offer, ".")
	if !store.ValidConversationID(id) {
		t.Fatalf("the home page offers %q", offer)
	}
	return offer, id
}

// post sends a message from the conversation page's composer (Datastar form).
func (a *app) post(t testing.TB, conv, text, key string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", a.URL+"/c/"+conv+"/messages", strings.NewReader("text="+text+"&key="+key))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Datastar-Request", "true")
	res, err := a.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(strings.NewReader(string(body)))
	return res
}

// waitStatus waits until message i of conv has one of the statuses.
func (a *app) waitStatus(t testing.TB, conv string, i int, statuses ...string) store.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		snap, err := a.Store.Snapshot(context.Background(), conv, store.ID{})
		if err == nil && len(snap.Messages) > i {
			for _, s := range statuses {
				if snap.Messages[i].Status == s {
					return snap.Messages[i]
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("message %d of %s never reached %v", i, conv, statuses)
	return store.Message{}
}

// waitNamed waits until conv has a title: it lands just after the first
// answer ends, so two loads of its page between the two would differ.
func (a *app) waitNamed(t *testing.T, conv string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		meta, err := a.Store.Meta(context.Background(), conv)
		if err == nil && meta.Title != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("conversation %s was never named", conv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// page loads the conversation page and returns its DOM and cursor.
func (a *app) page(t testing.TB, conv string) (*viewer.DOM, string) {
	t.Helper()
	res, err := a.Client.Get(a.URL + "/c/" + conv)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("page: status %d", res.StatusCode)
	}
	d, err := viewer.ParseDOM(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return d, d.Cursor()
}

// sseEvent is one server-sent event; readSSE and the page model come from
// internal/viewer, which the multi-process tests share.
type sseEvent = viewer.Event

func readSSE(r io.Reader, fn func(sseEvent) bool) error { return viewer.ReadSSE(r, fn) }
