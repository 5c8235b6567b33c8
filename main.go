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

	"github.com/parley-chat/parley/generation"
	"github.com/parley-chat/parley/handlers"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
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

	model, err := newModel(cfg)
	if err != nil {
		return err
	}

	st := store.New(rdb, store.Config{
		LogMaxLen:       int64(cfg.LogMaxLen),
		ConversationTTL: cfg.ConversationTTL,
		LeaseTTL:        cfg.LeaseTTL,
		MaxAnswerBytes:  cfg.MaxAnswerBytes,
		IdempotencyTTL:  24 * time.Hour,
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
		ViewerQueue:      cfg.ViewerQueue,
		MaxViewers:       cfg.MaxViewers,
		Heartbeat:        cfg.Heartbeat,
		SubscribeTimeout: 5 * time.Second,
		ProbeInterval:    10 * time.Second,
	})
	gens := generation.New(st, hub, model, log, generation.Config{
		FlushInterval: cfg.FlushInterval,
		MaxConcurrent: cfg.MaxGenerations,
		LeaseTTL:      cfg.LeaseTTL,
		SweepInterval: cfg.SweepInterval,
		MaxDuration:   cfg.MaxAnswerDuration,
		SystemPrompt:  cfg.SystemPrompt,
	})

	files, err := staticFS()
	if err != nil {
		return fmt.Errorf("static files: %w", err)
	}
	static, assets, err := handlers.Static(files)
	if err != nil {
		return err
	}
	srvHandler := handlers.NewServer(handlers.Deps{
		Log: log, Store: st, Hub: hub, Gen: gens, MD: md, Assets: assets, Static: static,
		Limits: handlers.Limits{MaxMessageBytes: cfg.MaxMessageBytes, MaxBodyBytes: int64(cfg.MaxBodyBytes)},
		Ready:  st.Ping,
	})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
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
	log.Info("listening", "addr", ln.Addr().String(), "model", model.Name())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "bound", cfg.ShutdownTimeout)
	deadline := time.Now().Add(cfg.ShutdownTimeout)
	shutdownCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// 1. Live streams end first, by aborting their connections: the clients
	//    reconnect (to another machine) with their Last-Event-ID.
	stopHub()
	// 2. Stop accepting connections and let posts in flight finish.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	cancelRequests()
	// 3. Answers being written get the rest of the bound, less a margin to
	//    write their end; the ones still running then end as interrupted.
	genCtx, cancelGen := context.WithDeadline(context.Background(), deadline.Add(-2*time.Second))
	gens.Shutdown(genCtx)
	cancelGen()
	stopSweep()
	bg.Wait()
	log.Info("stopped")
	return nil
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

// connectRedis connects to REDIS_URL, or starts the embedded in-memory
// server when it is empty: one code path for both.
func connectRedis(cfg config, log *slog.Logger) (redis.UniversalClient, func(), error) {
	if cfg.RedisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		log.Warn("REDIS_URL is not set: using an embedded in-memory Redis; conversations are kept in memory only and lost when the process stops", "addr", mr.Addr())
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, func() { _ = rdb.Close(); mr.Close() }, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	log.Info("using redis", "addr", opts.Addr, "db", opts.DB, "tls", opts.TLSConfig != nil)
	return rdb, func() { _ = rdb.Close() }, nil
}

// newModel picks the offline demo model unless an OpenAI-compatible endpoint
// is configured.
func newModel(cfg config) (llm.Model, error) {
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
