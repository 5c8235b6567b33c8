package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/clientaddr"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/metrics"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

// app is Parley built from its settings: a Redis client and everything that
// works on it, ready to serve (server.go).
type app struct {
	cfg        config.Config
	log        *slog.Logger
	rdb        redis.UniversalClient
	closeRedis func()
	met        *metrics.Metrics // nil when metrics are off
	model      llm.Model
	models     *llm.Catalog // what the model pickers offer
	hub        *live.Hub
	gens       *generation.Manager
	handler    http.Handler
}

// viewerWriteTimeout is how long a viewer's connection may take no write
// before the viewer is dropped: far above any real client's pause (a
// heartbeat goes out every PARLEY_HEARTBEAT), it only ends stalled ones.
const viewerWriteTimeout = 30 * time.Second

// newApp connects to Redis and builds everything on it. close releases Redis.
func newApp(ctx context.Context, cfg config.Config, log *slog.Logger) (*app, error) {
	rdb, closeRedis, err := connectRedis(cfg, log)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, rdb: rdb, closeRedis: closeRedis}
	if err := a.build(ctx); err != nil {
		closeRedis()
		return nil, err
	}
	return a, nil
}

func (a *app) close() { a.closeRedis() }

// build makes the store, the hub, the generations and the HTTP handler.
func (a *app) build(ctx context.Context) error {
	cfg := a.cfg
	// On Redis Cluster notices go through sharded pub/sub (SPUBLISH and
	// SSUBSCRIBE): each one stays on the shard of its conversation.
	_, sharded := a.rdb.(*redis.ClusterClient)

	// Metrics are built only when they are served: otherwise nothing pays
	// for them, not even the Redis hook.
	var (
		genObs   generation.Observer
		liveObs  live.Observer
		refusals handlers.Refusals
	)
	if cfg.MetricsAddr != "" {
		a.met = metrics.New()
		a.rdb.AddHook(a.met.RedisHook())
		genObs, liveObs, refusals = a.met, a.met, a.met
	}
	var err error
	if a.model, err = newModel(cfg); err != nil {
		return err
	}
	// In the background: a provider that does not answer must not hold
	// back the start, and the page shows each answer's failure anyway.
	a.models = llm.NewCatalog(a.model, cfg.ModelList(), 5*time.Minute)
	go checkModel(ctx, a.model, a.models, cfg, a.log, a.providerUp)

	st := store.New(a.rdb, store.Config{
		LogMaxLen:       int64(cfg.LogMaxLen),
		ConversationTTL: cfg.ConversationTTL,
		LeaseTTL:        cfg.LeaseTTL,
		MaxAnswerBytes:  cfg.MaxAnswerBytes,
		MaxMessages:     cfg.MaxMessages,
		IdempotencyTTL:  24 * time.Hour,
		Sharded:         sharded,
	})
	pingCtx, cancelPing := context.WithTimeout(ctx, 5*time.Second)
	if err := st.Ping(pingCtx); err != nil {
		// Keep going: /readyz reports it and everything retries, so a Redis
		// that comes up a little later than us is not a crash loop.
		a.log.Error("redis is not reachable yet", "err", err)
	}
	cancelPing()

	md := markdown.NewRenderer()
	a.hub = live.NewHub(a.rdb, st, md, a.log, live.Config{
		ViewerQueue:         cfg.ViewerQueue,
		MaxViewers:          cfg.MaxViewers,
		Heartbeat:           cfg.Heartbeat,
		SubscribeTimeout:    5 * time.Second,
		ProbeInterval:       10 * time.Second,
		WriteTimeout:        viewerWriteTimeout,
		RoomWritesPerSecond: cfg.RoomWrites,
		Observer:            liveObs,
	})
	if a.met != nil {
		a.met.RegisterHub(a.hub.Stats)
	}
	a.gens = generation.New(st, a.hub, a.model, a.log, generation.Config{
		FlushInterval: cfg.FlushInterval,
		FrameBudget:   cfg.FrameBudget,
		FrameMaxHold:  cfg.FrameMaxHold,
		MaxConcurrent: cfg.MaxGenerations,
		LeaseTTL:      cfg.LeaseTTL,
		SweepInterval: cfg.SweepInterval,
		MaxDuration:   cfg.MaxAnswerDuration,
		SystemPrompt:  cfg.SystemPrompt,
		DefaultModel:  a.models.Default(),
		Observer:      genObs,
		Limits: generation.Limits{
			PostsPerMinute: cfg.PostsPerMinute, AddressPostsPerMinute: cfg.AddrPosts,
			ConversationsPerHour: cfg.ConvsPerHour, AddressConversationsPerHour: cfg.AddrConvs,
			OwnerAnswers: cfg.OwnerGens, AddressAnswers: cfg.AddrGens,
			DailyTokens: int64(cfg.DailyTokens), StoredBytes: int64(cfg.StoredBytes),
		},
		MaxAnswerBytes: cfg.MaxAnswerBytes,
	})
	a.handler, err = a.newHandler(st, md, refusals)
	return err
}

// newHandler builds the public HTTP handler: every route, with the
// sessions, the access gate and the limits.
func (a *app) newHandler(st *store.Store, md *markdown.Renderer, refusals handlers.Refusals) (http.Handler, error) {
	cfg := a.cfg
	files, err := staticFS()
	if err != nil {
		return nil, fmt.Errorf("static files: %w", err)
	}
	static, assets, err := handlers.Static(files)
	if err != nil {
		return nil, err
	}
	sessions, err := newSessions(cfg, a.log)
	if err != nil {
		return nil, err
	}
	clients, err := clientaddr.Parse(cfg.TrustedProxy)
	if err != nil {
		return nil, fmt.Errorf("PARLEY_TRUSTED_PROXY: %w", err)
	}
	gate, err := newAccess(cfg, a.log)
	if err != nil {
		return nil, err
	}
	return handlers.NewServer(handlers.Deps{
		Log: a.log, Store: st, Hub: a.hub, Gen: a.gens, MD: md, Assets: assets, Static: static,
		Sessions: sessions,
		Limits: handlers.Limits{
			MaxMessageBytes: cfg.MaxMessageBytes, MaxBodyBytes: int64(cfg.MaxBodyBytes),
			RequestTimeout: cfg.RequestTimeout, ActionsPerMinute: cfg.ActionsPerMin,
			ViewersPerAddress: cfg.AddrViewers,
		},
		Clients:     clients,
		Access:      gate,
		Guesses:     access.NewGuesses(a.rdb),
		Ready:       st.Ping,
		GzipStreams: cfg.SSEGzip,
		Refusals:    refusals,
		Models:      a.models,
		// The instructions the generation sends when a conversation has none of its own.
		DefaultInstructions: cfg.SystemPrompt,
	}), nil
}

// connectRedis connects to the Redis the settings name (a cluster, see
// config.RedisOptions, or one server), or starts the embedded in-memory
// server when they name none: one code path for all.
func connectRedis(cfg config.Config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	single, cluster, err := cfg.RedisOptions()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cluster != nil:
		rdb := redis.NewClusterClient(cluster)
		log.Info("using redis cluster: sharded pub/sub, one subscription per master", "seeds", cluster.Addrs, "tls", cluster.TLSConfig != nil)
		return rdb, func() { _ = rdb.Close() }, nil
	case single != nil:
		rdb := redis.NewClient(single)
		log.Info("using redis", "addr", single.Addr, "db", single.DB, "tls", single.TLSConfig != nil)
		return rdb, func() { _ = rdb.Close() }, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, nil, fmt.Errorf("start embedded redis: %w", err)
	}
	log.Warn("REDIS_URL is not set: using an embedded in-memory Redis; conversations are kept in memory only and lost when the process stops", "addr", mr.Addr())
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); runEmbeddedClock(mr, stop) }()
	return rdb, func() { close(stop); <-done; _ = rdb.Close(); mr.Close() }, nil
}

// embeddedTick is how often the embedded Redis's keys age.
const embeddedTick = 100 * time.Millisecond

// runEmbeddedClock ages the embedded Redis's keys with the wall clock until
// stop closes. The embedded server expires keys only when told time has
// passed: without this, rate-limit windows, leases and conversations never
// expired, and a person was refused for good after a minute's messages.
func runEmbeddedClock(mr *miniredis.Miniredis, stop <-chan struct{}) {
	t := time.NewTicker(embeddedTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			mr.FastForward(now.Sub(last))
			last = now
		}
	}
}

// newModel picks the offline demo model unless an OpenAI-compatible endpoint
// is configured.
func newModel(cfg config.Config) (llm.Model, error) {
	if cfg.Model == "clock" { // load tests: tokens carry their emission time
		return llm.NewClock(llm.ClockConfig{TokensPerSecond: cfg.DemoTPS, Tokens: cfg.DemoTokens}), nil
	}
	if cfg.Model == "demo" || (cfg.OpenAIKey == "" && cfg.OpenAIBaseURL == "") {
		return llm.NewDemo(llm.DemoConfig{TokensPerSecond: cfg.DemoTPS, Tokens: cfg.DemoTokens}), nil
	}
	name := cfg.Model
	if name == "" {
		name = "gpt-4o-mini"
	}
	m, err := llm.NewOpenAI(llm.OpenAIConfig{
		APIKey: cfg.OpenAIKey, BaseURL: cfg.OpenAIBaseURL, Model: name, IdleTimeout: cfg.ModelIdleTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return m, nil
}

// providerUp sets the model provider's health gauge, when metrics are on.
func (a *app) providerUp(up bool) {
	if a.met != nil {
		a.met.ProviderUp(up)
	}
}

// modelCheckTimeout bounds the start's one question to the model provider.
const modelCheckTimeout = 10 * time.Second

// checkModel asks the model provider for its models once, through the
// catalog (which keeps the list for the first pages), so that a wrong key or
// a provider that does not answer is in the logs from the start, not only at
// the first answer, and sets the provider's health with up. It never stops
// the process. The offline models are always up.
func checkModel(ctx context.Context, m llm.Model, models *llm.Catalog, cfg config.Config, log *slog.Logger, up func(bool)) {
	if _, ok := m.(*llm.OpenAI); !ok {
		up(true)
		return
	}
	baseURL := cfg.OpenAIBaseURL
	if baseURL == "" {
		baseURL = "https://api.openai.com/v1"
	}
	ctx, cancel := context.WithTimeout(ctx, modelCheckTimeout)
	defer cancel()
	err := models.Check(ctx)
	var e *llm.Error
	switch {
	case errors.Is(err, context.Canceled):
		return // stopping: nothing learnt
	case err == nil:
		up(true)
		log.Info("model provider answers", "url", baseURL, "offered", len(models.List(ctx)))
	case errors.As(err, &e) && e.Kind == llm.Auth:
		up(false)
		if cfg.OpenAIKey == "" {
			log.Error("the model provider wants an API key, and OPENAI_API_KEY is not set: "+e.Err.Error(), "url", baseURL)
		} else {
			log.Error("the model provider rejected OPENAI_API_KEY: "+e.Err.Error(), "url", baseURL)
		}
	case llm.ProviderFault(err) || errors.Is(err, context.DeadlineExceeded):
		up(false)
		log.Error("the model provider at "+baseURL+" does not answer: "+err.Error(), "url", baseURL)
	default:
		// It answered, but not with a list (a server without /models, a
		// rate limit): answers may well work.
		up(true)
		log.Warn("the model provider did not list its models", "url", baseURL, "err", err)
	}
}

// newSessions signs session cookies with PARLEY_SESSION_KEYS (newest
// first; older ones still verify, for a rotation) or PARLEY_SESSION_KEY.
// Without either a random key is made: fine for one process, but cookies then
// die with it, and several processes behind one load balancer must share
// their keys.
func newSessions(cfg config.Config, log *slog.Logger) (*session.Manager, error) {
	keys := cfg.SessionKeyring()
	if len(keys) == 0 {
		log.Warn("PARLEY_SESSION_KEYS is not set: using a random key, so browsers lose ownership of their conversations when this process restarts; set the same key (32+ bytes) on every process")
		keys = [][]byte{session.NewKey()}
	}
	m, err := session.New(cfg.SessionMaxAge, keys...)
	if err != nil {
		return nil, fmt.Errorf("PARLEY_SESSION_KEYS: %w", err)
	}
	return m, nil
}
