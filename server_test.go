package main

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/metrics"
)

// TestMetricsPortTaken: a second Parley on one machine starts without
// metrics when the default metrics address is taken, and says so; an address
// the operator chose that is taken stops the start.
func TestMetricsPortTaken(t *testing.T) {
	// Not parallel: it holds the default metrics address for a moment.
	held, err := net.Listen("tcp", config.DefaultMetricsAddr)
	if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatal(err)
	}
	if held != nil {
		defer held.Close()
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	addr, stop, err := serveMetrics(config.DefaultMetricsAddr, metrics.New(), log)
	if err != nil || addr != nil || stop == nil {
		t.Fatalf("default address taken: addr %v, err %v; want no metrics and no error", addr, err)
	}
	if !strings.Contains(logs.String(), "metrics are off") {
		t.Errorf("the log does not say metrics are off: %s", logs.String())
	}

	chosen, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer chosen.Close()
	if _, _, err := serveMetrics(chosen.Addr().String(), metrics.New(), log); err == nil {
		t.Error("a chosen metrics address that is taken did not stop the start")
	}
}
