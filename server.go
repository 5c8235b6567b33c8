package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/metrics"
)

// server is the app serving: its listeners and background loops, each with
// a stop of its own so that shutdown can order them.
type server struct {
	app      *app
	http     *http.Server
	serveErr chan error // the public listener's end, when it ends by itself

	stopMetrics    func(context.Context)
	cancelRequests context.CancelFunc
	stopHub        context.CancelFunc
	stopSweep      context.CancelFunc
	bg             sync.WaitGroup // the hub's and the sweeper's loops
}

// serve opens the public, profiler and metrics listeners, starts the hub and
// the sweeper, and prints the line ("running at http://…") that tells a
// person, or a test, where Parley is. close releases what shutdown did not.
func (a *app) serve(ctx context.Context, stdout io.Writer) (*server, error) {
	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", a.cfg.Addr, err)
	}
	if err := a.cfg.ServePprof(a.log); err != nil {
		_ = ln.Close()
		return nil, err
	}
	metricsAddr, stopMetrics, err := serveMetrics(a.cfg.MetricsAddr, a.met, a.log)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	s := &server{app: a, serveErr: make(chan error, 1), stopMetrics: stopMetrics}
	// Requests live in their own context, cut only after the server has
	// stopped, so in-flight posts complete during shutdown.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	s.cancelRequests = cancelRequests
	s.http = &http.Server{
		Handler: a.handler,
		// No WriteTimeout: it would cut every SSE stream. Slow clients are
		// bounded by ReadHeaderTimeout and per-request limits instead.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}

	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	s.stopHub = stopHub
	s.bg.Go(func() { _ = a.hub.Run(hubCtx) })
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	s.stopSweep = stopSweep
	s.bg.Go(func() { a.gens.RunSweeper(sweepCtx) })

	go func() { s.serveErr <- s.http.Serve(ln) }()
	name := a.model.Name()
	fmt.Fprintf(stdout, "Parley is running at http://%s (model: %s)\n", displayAddr(ln.Addr()), name)
	if metricsAddr != nil {
		fmt.Fprintf(stdout, "Metrics are at http://%s%s\n", displayAddr(metricsAddr), metrics.Path)
		a.log.Info("listening", "addr", ln.Addr().String(), "model", name, "metrics", metricsAddr.String())
	} else {
		a.log.Info("listening", "addr", ln.Addr().String(), "model", name, "metrics", "off")
	}
	if a.cfg.AddrFromPort {
		// A PORT exported in a developer's shell for another tool would
		// otherwise open Parley to the network without a word.
		a.log.Info("PORT is set and PARLEY_ADDR is not: listening on every interface at "+a.cfg.Addr+"; set PARLEY_ADDR to choose", "port", strings.TrimPrefix(a.cfg.Addr, ":"))
	}
	return s, nil
}

// close stops whatever is still running, without waiting: after shutdown
// that is nothing; after the listener failed, everything.
func (s *server) close() {
	s.stopSweep()
	s.stopHub()
	s.cancelRequests()
	s.stopMetrics(context.Background())
}

// shutdown stops serving within PARLEY_SHUTDOWN_TIMEOUT, in an order that
// loses nothing: streams hand over, posts in flight finish, answers being
// written end, then the loops and the metrics stop.
//
// Every step is bounded by the deadline, Redis or no Redis (its commands
// fail within PARLEY_REDIS_TIMEOUT, and the generations' last writes within
// their end wait), so that the platform never has to kill the process:
// closing the Redis clients afterwards takes no time.
func (s *server) shutdown() {
	a := s.app
	a.log.Info("shutting down", "bound", a.cfg.ShutdownTimeout)
	start := time.Now()
	deadline := start.Add(a.cfg.ShutdownTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// 1. Live streams end first, by aborting their connections: the clients
	//    reconnect (to another machine) with their Last-Event-ID.
	s.stopHub()
	// 2. Stop accepting connections and let posts in flight finish.
	if err := s.http.Shutdown(ctx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	s.cancelRequests()
	// 3. Answers being written get the rest of the bound, less a margin to
	//    write their end; the ones still running then end as interrupted
	//    (within generation's shutdownEndWait, 1.5 s, of that margin).
	genCtx, cancelGen := context.WithDeadline(ctx, deadline.Add(-2*time.Second))
	a.gens.Shutdown(genCtx)
	cancelGen()
	// 4. The hub's and the sweeper's loops: a command they have in flight to
	//    a Redis that does not answer ends within its timeout, but not after
	//    the deadline for them.
	s.stopSweep()
	bgDone := make(chan struct{})
	go func() { s.bg.Wait(); close(bgDone) }()
	select {
	case <-bgDone:
	case <-ctx.Done():
		a.log.Warn("the hub or the sweeper did not stop within the shutdown bound; leaving them")
	}
	// 5. Metrics last, so that the shutdown itself can be watched.
	s.stopMetrics(ctx)
	a.log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
}

// serveMetrics serves Prometheus metrics on a listener of their own at addr,
// never on the public port. With no addr (or no metrics) it does nothing and
// returns a nil address. stop shuts the listener down; calling it again does
// nothing.
//
// It lives here, not in internal/config with the profiler's listener,
// because it serves what the app built (metrics.Metrics) and is one step of
// the shutdown order; the profiler needs nothing but its setting.
func serveMetrics(addr string, met *metrics.Metrics, log *slog.Logger) (net.Addr, func(context.Context), error) {
	if addr == "" || met == nil {
		return nil, func(context.Context) {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil && addr == config.DefaultMetricsAddr && errors.Is(err, syscall.EADDRINUSE) {
		// A second Parley on one machine (two local demos): the default
		// was not chosen, so it is not worth refusing to start for.
		log.Warn("metrics are off: "+addr+" is taken, by another Parley perhaps; set METRICS_ADDR (or -metrics-addr) to serve them", "err", err)
		return nil, func(context.Context) {}, nil
	}
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

// displayAddr turns a listener address into something a browser can open.
func displayAddr(a net.Addr) string {
	s := a.String()
	if host, port, err := net.SplitHostPort(s); err == nil && (host == "::" || host == "0.0.0.0" || strings.HasPrefix(host, "[::]")) {
		return net.JoinHostPort("localhost", port)
	}
	return s
}
