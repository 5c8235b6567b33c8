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
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/frame"
	"github.com/parley-chat/parley/live"
	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/markdown"
	"github.com/parley-chat/parley/render"
	"github.com/parley-chat/parley/store"
	"github.com/parley-chat/parley/views"
)

// The naive server is the baseline every figure is compared with: the design
// Parley replaces, built deliberately the obvious way, and kept here, out of
// the product. It uses the same store (Redis keys, Lua scripts, log IDs) and
// sends the same Datastar frames (same element ids), so the same viewers
// parse it and the same exactness check applies. What it does not do:
//
//   - every viewer has its own Redis SUBSCRIBE connection (no shared
//     subscription, no rooms);
//   - every token is its own Redis round trip (no coalescing);
//   - on every token every viewer re-renders the whole answer's Markdown and
//     re-sends the whole message (no shared render, no cache, no block
//     patches). Pages and catch-up frames use the product's own rendering.
//
// It is correct (subscribe, then read, then forward newer events), only slow.
type naiveServer struct {
	rdb   *redis.Client
	store *store.Store
	md    *markdown.Renderer
	model llm.Model
	log   *slog.Logger
	gens  context.Context // generations outlive their requests
}

// naiveOwner owns every conversation of the naive server: it has no sessions.
const naiveOwner = "naive"

func runNaive(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve-naive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379", "Redis URL")
	modelName := fs.String("model", "clock", "clock or demo")
	tps := fs.Float64("tps", 100, "model tokens per second")
	tokens := fs.Int("tokens", 200, "model tokens per answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("redis url: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	var model llm.Model = llm.NewClock(llm.ClockConfig{TokensPerSecond: *tps, Tokens: *tokens})
	if *modelName == "demo" {
		model = llm.NewDemo(llm.DemoConfig{TokensPerSecond: *tps, Tokens: *tokens})
	}
	n := &naiveServer{
		rdb: rdb,
		store: store.New(rdb, store.Config{LogMaxLen: 10000, ConversationTTL: time.Hour, LeaseTTL: 30 * time.Second,
			MaxAnswerBytes: 1 << 20, IdempotencyTTL: time.Hour}),
		md:    markdown.NewRenderer(),
		model: model,
		log:   slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		gens:  context.WithoutCancel(ctx),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("POST /c", http.HandlerFunc(n.create))
	mux.Handle("GET /c/{id}", http.HandlerFunc(n.page))
	mux.Handle("GET /c/{id}/events", http.HandlerFunc(n.events))
	mux.Handle("POST /c/{id}/messages", http.HandlerFunc(n.post))
	mux.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") }))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func (n *naiveServer) create(w http.ResponseWriter, r *http.Request) {
	// Like Parley's API: without a "conv" field the server chooses the ID.
	id := r.PostFormValue("conv")
	if _, given := r.PostForm["conv"]; !given {
		id = store.NewID()
	}
	if !store.ValidConversationID(id) {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	if err := n.start(r.Context(), id, r.PostFormValue("text"), "first", true); err != nil && !errors.Is(err, store.ErrExists) {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	http.Redirect(w, r, "/c/"+id, http.StatusSeeOther)
}

func (n *naiveServer) post(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := n.start(r.Context(), id, r.PostFormValue("text"), r.PostFormValue("key"), false)
	switch {
	case errors.Is(err, store.ErrBusy):
		http.Error(w, err.Error(), http.StatusConflict)
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	default:
		frame.Open(w, r, http.StatusOK)
		_, _ = w.Write(frame.Merge("", `<p id="composer-error"></p>`))
	}
}

// start stores the message and runs its answer: one Redis round trip per token.
func (n *naiveServer) start(ctx context.Context, conv, text, key string, create bool) error {
	gen := store.NewID()
	if _, err := n.store.Post(ctx, store.Post{Conv: conv, Owner: naiveOwner, Text: text, Key: key, Gen: gen, Create: create}); err != nil {
		return err
	}
	go func() {
		ctx := n.gens
		status := store.StatusDone
		_, err := n.model.Stream(ctx, llm.Request{Messages: []llm.Message{{Role: llm.RoleUser, Content: text}}}, func(piece string) error {
			_, err := n.store.Append(ctx, store.AppendCall{Conv: conv, Gen: gen, Text: piece, Offset: -1})
			return err
		})
		if err != nil {
			status = store.StatusFailed
			n.log.Warn("naive generation failed", "err", err)
		}
		if err := n.store.Finish(ctx, store.Ending{Conv: conv, Gen: gen, Status: status}); err != nil {
			n.log.Warn("naive finish failed", "err", err)
		}
	}()
	return nil
}

// page renders the conversation's messages with the product's own views,
// in a bare page that carries the cursor like Parley's does.
func (n *naiveServer) page(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	snap, err := n.store.Snapshot(r.Context(), id, store.ID{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!DOCTYPE html><html><body><nav>`)
	_ = views.SideTitle(snap.Title).Render(r.Context(), w)
	fmt.Fprintf(w, `</nav><main data-on-load="@get('/c/%s/events?after=%s')">`, id, snap.Last)
	_ = views.Title(snap.Title).Render(r.Context(), w)
	_, _ = io.WriteString(w, `<div id="messages">`)
	_ = views.Slot(0, render.Messages(n.md, id, snap.Messages)).Render(r.Context(), w)
	_, _ = io.WriteString(w, "</div></main></body></html>")
}

// events is the naive stream: its own subscription, then the whole state,
// then, for every event, the whole message re-rendered.
func (n *naiveServer) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("after")
	}
	cursor, _ := store.ParseID(raw)

	ps := n.rdb.Subscribe(ctx, store.Channel(id))
	defer ps.Close()
	stopClose := context.AfterFunc(ctx, func() { _ = ps.Close() }) // Receive ignores ctx
	defer stopClose()
	if _, err := ps.Receive(ctx); err != nil { // the subscription is confirmed
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	snap, err := n.store.Snapshot(ctx, id, store.ID{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	frame.Open(w, r, http.StatusOK)
	rc := http.NewResponseController(w)
	sent := snap.Last
	if !snap.CursorValid || snap.Last != cursor {
		_, _ = w.Write(live.CatchUp(n.md, id, cursor, snap).Data)
	}
	if rc.Flush() != nil {
		return
	}
	msgs := snap.Messages
	for {
		m, err := ps.Receive(ctx)
		if err != nil {
			return
		}
		msg, ok := m.(*redis.Message)
		if !ok {
			continue
		}
		ev, err := store.DecodeEvent(msg.Payload)
		if err != nil {
			continue
		}
		evID, err := store.ParseID(ev.ID)
		if err != nil || !sent.Less(evID) {
			continue
		}
		from := ev.Msg
		switch ev.Type {
		case store.EventMessage:
			msgs = append(msgs[:min(ev.Msg, len(msgs))],
				store.Message{Index: ev.Msg, Role: "user", Status: store.StatusDone, Text: ev.Text, Rev: ev.ID},
				store.Message{Index: ev.Msg + 1, Role: "assistant", Status: store.StatusStreaming, Rev: ev.ID})
		case store.EventDelta:
			if ev.Msg >= len(msgs) {
				continue
			}
			msgs[ev.Msg].Text += ev.Text
			msgs[ev.Msg].Rev = ev.ID
		case store.EventEnd:
			if ev.Msg >= len(msgs) {
				continue
			}
			msgs[ev.Msg].Status, msgs[ev.Msg].Error, msgs[ev.Msg].Rev = ev.Status, ev.Error, ev.ID
		default:
			continue
		}
		var sb strings.Builder
		_ = views.Slot(from, n.render(id, msgs[from:])).Render(ctx, &sb)
		if _, err := w.Write(frame.Merge(ev.ID, sb.String())); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		sent = evID
	}
}

// render renders messages from scratch, every block of every answer, with
// no cache: the naive server's cost per token and viewer. The blocks are
// those Parley's pages have (markdown.Split), so viewers can compare.
func (n *naiveServer) render(conv string, msgs []store.Message) []views.Message {
	out := make([]views.Message, len(msgs))
	for i, m := range msgs {
		v := views.Message{Conv: conv, Index: m.Index, Role: m.Role, Status: m.Status, Error: m.Error, Rev: m.Rev}
		if m.Role != "assistant" {
			v.Text = m.Text
		} else {
			starts := markdown.Split(m.Text)
			for k, start := range starts {
				end := len(m.Text)
				if k+1 < len(starts) {
					end = starts[k+1]
				}
				v.Blocks = append(v.Blocks, n.md.Render(m.Text[start:end]))
			}
		}
		out[i] = v
	}
	return out
}
