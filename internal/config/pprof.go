package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ServePprof serves the Go profiler on a listener of its own at
// PARLEY_PPROF_ADDR, for measuring (cmd/parley-load, BENCHMARKS.md). It does
// nothing when that is empty: profiles show internals and cost CPU, so never
// expose it publicly. The listener lives as long as the process.
func (c Config) ServePprof(log *slog.Logger) error {
	if c.PprofAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", c.PprofAddr)
	if err != nil {
		return fmt.Errorf("listen for pprof on %s: %w", c.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener stopped", "err", err)
		}
	}()
	log.Warn("profiler listening; do not expose it", "addr", ln.Addr().String())
	return nil
}
