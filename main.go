// Command parley serves live LLM conversations: server-rendered pages whose
// answers stream in over Datastar SSE, fanned out through Redis.
//
// With no configuration it runs a complete local demo: an embedded in-memory
// Redis and an offline demo model. See README.md for every setting.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/clientaddr"
	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/metrics"
	"github.com/parley-chat/parley/session"
	"github.com/parley-chat/parley/store"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// run starts Parley and serves until ctx is done or SIGINT/SIGTERM arrives,
// then shuts down gracefully within the configured bound.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}

	rdb, closeRedis, err := connectRedis(cfg, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	// On Redis Cluster notices go through sharded pub/sub (SPUBLISH and
	// SSUBSCRIBE): each one stays on the shard of its conversation.
	_, sharded := rdb.(*redis.ClusterClient)

	// Metrics are built only when they are served: otherwise nothing pays
	// for them, not even the Redis hook.
	var (
		met      *metrics.Metrics
		genObs   generation.Observer
		liveObs  live.Observer
		refusals handlers.Refusals
	)
	if cfg.MetricsAddr != "" {
		met = metrics.New()
		rdb.AddHook(met.RedisHook())
		genObs, liveObs, refusals = met, met, met
	}

	model, err := newModel(cfg)
	if err != nil {
		return err
	}

	st := store.New(rdb, store.Config{
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
		log.Error("redis is not reachable yet", "err", err)
	}
	cancelPing()

	md := markdown.NewRenderer()
	hub := live.NewHub(rdb, st, md, log, live.Config{
		ViewerQueue:         cfg.ViewerQueue,
		MaxViewers:          cfg.MaxViewers,
		Heartbeat:           cfg.Heartbeat,
		SubscribeTimeout:    5 * time.Second,
		ProbeInterval:       10 * time.Second,
		Sharded:             sharded,
		WriteTimeout:        viewerWriteTimeout,
		RoomWritesPerSecond: cfg.RoomWrites,
		Observer:            liveObs,
	})
	if met != nil {
		met.RegisterHub(hub.Stats)
	}
	gens := generation.New(st, hub, model, log, generation.Config{
		FlushInterval: cfg.FlushInterval,
		FrameBudget:   cfg.FrameBudget,
		FrameMaxHold:  cfg.FrameMaxHold,
		MaxConcurrent: cfg.MaxGenerations,
		LeaseTTL:      cfg.LeaseTTL,
		SweepInterval: cfg.SweepInterval,
		MaxDuration:   cfg.MaxAnswerDuration,
		SystemPrompt:  cfg.SystemPrompt,
		Observer:      genObs,
		Limits: generation.Limits{
			PostsPerMinute: cfg.PostsPerMinute, AddressPostsPerMinute: cfg.AddrPosts,
			ConversationsPerHour: cfg.ConvsPerHour, AddressConversationsPerHour: cfg.AddrConvs,
			OwnerAnswers: cfg.OwnerGens, AddressAnswers: cfg.AddrGens,
			DailyTokens: int64(cfg.DailyTokens), StoredBytes: int64(cfg.StoredBytes),
		},
		MaxAnswerBytes: cfg.MaxAnswerBytes,
	})

	files, err := staticFS()
	if err != nil {
		return fmt.Errorf("static files: %w", err)
	}
	static, assets, err := handlers.Static(files)
	if err != nil {
		return err
	}
	sessions, err := newSessions(cfg, log)
	if err != nil {
		return err
	}
	clients, err := clientaddr.Parse(cfg.TrustedProxy)
	if err != nil {
		return fmt.Errorf("PARLEY_TRUSTED_PROXY: %w", err)
	}
	gate, err := newAccess(cfg, log)
	if err != nil {
		return err
	}
	srvHandler := handlers.NewServer(handlers.Deps{
		Log: log, Store: st, Hub: hub, Gen: gens, MD: md, Assets: assets, Static: static,
		Sessions: sessions,
		Limits: handlers.Limits{
			MaxMessageBytes: cfg.MaxMessageBytes, MaxBodyBytes: int64(cfg.MaxBodyBytes),
			RequestTimeout: cfg.RequestTimeout, ActionsPerMinute: cfg.ActionsPerMin,
			ViewersPerAddress: cfg.AddrViewers,
		},
		Clients:     clients,
		Access:      gate,
		Guesses:     access.NewGuesses(rdb),
		Ready:       st.Ping,
		GzipStreams: cfg.SSEGzip,
		Refusals:    refusals,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if err := servePprof(cfg.PprofAddr, log); err != nil {
		_ = ln.Close()
		return fmt.Errorf("listen for pprof on %s: %w", cfg.PprofAddr, err)
	}
	metricsAddr, stopMetrics, err := serveMetrics(cfg.MetricsAddr, met, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer stopMetrics(context.Background())
	// Requests live in their own context, cut only after the server has
	// stopped, so in-flight posts complete during shutdown.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{
		Handler: srvHandler,
		// No WriteTimeout: it would cut every SSE stream. Slow clients are
		// bounded by ReadHeaderTimeout and per-request limits instead.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	var bg sync.WaitGroup
	bg.Go(func() { _ = hub.Run(hubCtx) })
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSweep()
	bg.Go(func() { gens.RunSweeper(sweepCtx) })

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "Parley is running at http://%s (model: %s)\n", displayAddr(ln.Addr()), model.Name())
	if metricsAddr != nil {
		fmt.Fprintf(stdout, "Metrics are at http://%s%s\n", displayAddr(metricsAddr), metrics.Path)
		log.Info("listening", "addr", ln.Addr().String(), "model", model.Name(), "metrics", metricsAddr.String())
	} else {
		log.Info("listening", "addr", ln.Addr().String(), "model", model.Name(), "metrics", "off")
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "bound", cfg.ShutdownTimeout)
	start := time.Now()
	deadline := start.Add(cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// Every step below is bounded by the deadline, Redis or no Redis (its
	// commands fail within PARLEY_REDIS_TIMEOUT, and the generations' last
	// writes within their end wait), so that the platform never has to kill
	// the process: closing the Redis clients (deferred) takes no time.
	// 1. Live streams end first, by aborting their connections: the clients
	//    reconnect (to another machine) with their Last-Event-ID.
	stopHub()
	// 2. Stop accepting connections and let posts in flight finish.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	cancelRequests()
	// 3. Answers being written get the rest of the bound, less a margin to
	//    write their end; the ones still running then end as interrupted
	//    (within generation's shutdownEndWait, 1.5 s, of that margin).
	genCtx, cancelGen := context.WithDeadline(shutdownCtx, deadline.Add(-2*time.Second))
	gens.Shutdown(genCtx)
	cancelGen()
	// 4. The hub's and the sweeper's loops: a command they have in flight to
	//    a Redis that does not answer ends within its timeout, but not after
	//    the deadline for them.
	stopSweep()
	bgDone := make(chan struct{})
	go func() { bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-shutdownCtx.Done():
		log.Warn("the hub or the sweeper did not stop within the shutdown bound; leaving them")
	}
	// 5. Metrics last, so that the shutdown itself can be watched.
	stopMetrics(shutdownCtx)
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// viewerWriteTimeout is how long a viewer's connection may take no write
// before the viewer is dropped: far above any real client's pause (a
// heartbeat goes out every PARLEY_HEARTBEAT), it only ends stalled ones.
const viewerWriteTimeout = 30 * time.Second

// serveMetrics serves Prometheus metrics on a listener of their own at addr,
// never on the public port. With no addr (or no metrics) it does nothing and
// returns a nil address. stop shuts the listener down; calling it again does
// nothing.
func serveMetrics(addr string, met *metrics.Metrics, log *slog.Logger) (net.Addr, func(context.Context), error) {
	if addr == "" || met == nil {
		return nil, func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen for metrics on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           met.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	var once sync.Once
	return ln.Addr(), func(ctx context.Context) {
		once.Do(func() {
			if err := srv.Shutdown(ctx); err != nil {
				log.Warn("metrics shutdown", "err", err)
			}
		})
	}, nil
}

// newSessions signs session cookies with PARLEY_SESSION_KEYS (newest
// first; older ones still verify, for a rotation) or PARLEY_SESSION_KEY.
// Without either a random key is made: fine for one process, but cookies then
// die with it, and several processes behind one load balancer must share
// their keys.
func newSessions(cfg config, log *slog.Logger) (*session.Manager, error) {
	keys := sessionKeys(cfg)
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

// sessionKeys are the configured session keys, newest first (none when
// neither PARLEY_SESSION_KEYS nor PARLEY_SESSION_KEY is set).
func sessionKeys(cfg config) [][]byte {
	var keys [][]byte
	for k := range strings.SplitSeq(cfg.SessionKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, []byte(k))
		}
	}
	if len(keys) == 0 && cfg.SessionKey != "" {
		keys = [][]byte{[]byte(cfg.SessionKey)}
	}
	return keys
}

func newLogger(cfg config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log-level %q: use debug, info, warn or error", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q: use text or json", cfg.LogFormat)
}

// connectRedis connects to REDIS_URL (with a cluster client when the
// configuration names a Redis Cluster: see clusterOptions), or starts the
// embedded in-memory server when it is empty: one code path for all.
func connectRedis(cfg config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if cfg.RedisURL == "" && cfg.RedisClusterAddrs == "" && !cfg.RedisCluster {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		log.Warn("REDIS_URL is not set: using an embedded in-memory Redis; conversations are kept in memory only and lost when the process stops", "addr", mr.Addr())
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, func() { _ = rdb.Close(); mr.Close() }, nil
	}
	copts, err := clusterOptions(cfg)
	if err != nil {
		return nil, nil, err
	}
	if copts != nil {
		copts.DialTimeout, copts.ReadTimeout, copts.WriteTimeout = cfg.RedisTimeout, cfg.RedisTimeout, cfg.RedisTimeout
		copts.ContextTimeoutEnabled = true
		if cfg.RedisPoolSize > 0 {
			copts.PoolSize = cfg.RedisPoolSize
		}
		// go-redis re-reads the slot map on MOVED, but not when a master
		// dies: it keeps dialling the dead address until its periodic reload
		// (60 s by default). The hub tells it sooner (live/sharded.go); this
		// bounds the wait when the hub cannot.
		copts.ClusterStateReloadInterval = 10 * time.Second
		rdb := redis.NewClusterClient(copts)
		log.Info("using redis cluster: sharded pub/sub, one subscription per master", "seeds", copts.Addrs, "tls", copts.TLSConfig != nil)
		return rdb, func() { _ = rdb.Close() }, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// Without a bound a paused or overloaded Redis holds every request (and
	// its goroutine) until it answers; with one they fail fast and clearly.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = cfg.RedisTimeout, cfg.RedisTimeout, cfg.RedisTimeout
	opts.ContextTimeoutEnabled = true // a request's deadline bounds its commands too
	if cfg.RedisPoolSize > 0 {
		opts.PoolSize = cfg.RedisPoolSize
	}
	rdb := redis.NewClient(opts)
	log.Info("using redis", "addr", opts.Addr, "db", opts.DB, "tls", opts.TLSConfig != nil)
	return rdb, func() { _ = rdb.Close() }, nil
}

// newModel picks the offline demo model unless an OpenAI-compatible endpoint
// is configured.
func newModel(cfg config) (llm.Model, error) {
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

// displayAddr turns a listener address into something a browser can open.
func displayAddr(a net.Addr) string {
	s := a.String()
	if host, port, err := net.SplitHostPort(s); err == nil && (host == "::" || host == "0.0.0.0" || strings.HasPrefix(host, "[::]")) {
		return net.JoinHostPort("localhost", port)
	}
	return s
}
