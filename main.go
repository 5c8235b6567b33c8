// Command parley serves live LLM conversations: server-rendered pages whose
// answers stream in over Datastar SSE, fanned out through Redis.
//
// With no configuration it runs a complete local demo: an embedded in-memory
// Redis and an offline demo model. `parley -h` and README.md list every
// setting (internal/config defines them).
//
// The program is built in app.go (Redis, store, hub, generations, handler)
// and served and shut down in server.go; run ties the two.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-chat/parley/internal/config"
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

	cfg, err := config.Parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()

	srv, err := a.serve(ctx, stdout)
	if err != nil {
		return err
	}
	defer srv.close()
	select {
	case err := <-srv.serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	srv.shutdown()
	return nil
}
