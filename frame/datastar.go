// Package frame writes Datastar server-sent events. It is the one place that
// knows which Datastar client the page runs: the vendored browser client is
// 1.0.0-beta.11 (the only official build the npm registry serves), whose event
// is "datastar-merge-fragments", while the Go SDK speaks Datastar v1. The SDK
// still does the SSE framing, headers and flushing; this file only picks the
// event names and data lines that beta.11 understands. Moving to a v1 client
// changes this file (and attribute names in views), nothing else.
package frame

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/starfederation/datastar-go/datastar"
)

// The beta.11 names of the v1 events "datastar-patch-elements" and
// "datastar-patch-signals" (the v1 remove-elements is a patch with mode remove).
const (
	eventMergeFragments = "datastar-merge-fragments"
	eventMergeSignals   = "datastar-merge-signals"
	eventRemoveFragment = "datastar-remove-fragments"
)

// Heartbeat is an SSE comment. Proxies (Fly.io, Cloudflare, nginx) close
// connections that stay quiet for about a minute; the client ignores comments.
var heartbeat = []byte(": keepalive\n\n")

// Heartbeat returns the bytes of one keepalive comment.
func Heartbeat() []byte { return heartbeat }

// Merge renders one event that morphs each top-level element of fragments into
// the element of the page with the same id. id becomes the SSE event id, which
// the client sends back as Last-Event-ID when it reconnects. The bytes are
// built once and may be written to any number of viewers.
//
// The HTML is written on as few data lines as possible (one, for HTML without
// script or comments): see fragmentLines.
func Merge(id string, fragments string) []byte {
	return send(id, eventMergeFragments, fragmentLines(fragments))
}

// Signals renders one event that merges signals (a JSON object) into the
// page's signals. Merging is idempotent: the same event applied twice leaves
// the same values.
func Signals(id string, signals string) []byte {
	return send(id, eventMergeSignals, dataLines("signals", signals))
}

// Remove renders one event that removes the elements matching selector;
// removing what is already gone is not an error in the client.
func Remove(id string, selector string) []byte {
	return send(id, eventRemoveFragment, []string{"selector " + selector})
}

func send(id, event string, lines []string) []byte {
	var buf bytes.Buffer
	n := len("event: \nid: \n\n") + len(event) + len(id)
	for _, l := range lines {
		n += len("data: \n") + len(l)
	}
	buf.Grow(n) // a catch-up's events are up to 64 KiB: no regrowth
	sse := datastar.NewSSE(&bufferWriter{buf: &buf}, bareRequest())
	var opts []datastar.SSEEventOption
	if id != "" {
		opts = append(opts, datastar.WithSSEEventId(id))
	}
	// Send only fails when writing fails, and a bytes.Buffer does not.
	_ = sse.Send(datastar.EventType(event), lines, opts...)
	return buf.Bytes()
}

// Open starts an event-stream response with status (200 for a stream; a 4xx
// for a rejected action whose body explains why in the page: the beta.11 client
// applies events from any status and never retries a POST that got an answer).
// Intermediaries must neither buffer nor transform the stream.
func Open(w http.ResponseWriter, r *http.Request, status int) {
	// The status and headers are sent here, before the SDK's NewSSE, whose
	// own "Cache-Control: no-cache" would otherwise replace no-transform.
	StreamHeaders(w.Header(), false)
	w.WriteHeader(status)
	// NewSSE flushes the headers; frames are then written as prebuilt bytes.
	datastar.NewSSE(w, r)
}

// OpenGzip starts a 200 event-stream response whose body the caller writes
// gzip-encoded (live compresses frames once per room, not per response).
// no-transform still asks proxies not to re-encode or buffer it.
func OpenGzip(w http.ResponseWriter, r *http.Request) {
	StreamHeaders(w.Header(), true)
	Open(w, r, http.StatusOK)
}

// StreamHeaders sets the headers of an event-stream response in h, with
// gzip those of a gzip-encoded one: Open's, for a response whose head is
// written by other means (a live stream on a hijacked connection).
func StreamHeaders(h http.Header, gzip bool) {
	if gzip && h.Get("Content-Encoding") != "gzip" {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	}
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
}

// dataLines splits a payload into the "key value" data lines beta.11 expects;
// the client joins lines of one key with "\n". Carriage returns would end an
// SSE line early, so they are folded into newlines first.
func dataLines(key, payload string) []string {
	payload = strings.ReplaceAll(payload, "\r\n", "\n")
	payload = strings.ReplaceAll(payload, "\r", "\n")
	lines := strings.Split(payload, "\n")
	for i, l := range lines {
		lines[i] = key + " " + l
	}
	return lines
}

// bufferWriter lets the SDK's generator write an event into memory, so that a
// frame is rendered once per room rather than once per viewer.
type bufferWriter struct {
	buf    *bytes.Buffer
	header http.Header
}

func (b *bufferWriter) Header() http.Header {
	if b.header == nil {
		b.header = http.Header{}
	}
	return b.header
}
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(int)             {}
func (b *bufferWriter) Flush()                      {}

func bareRequest() *http.Request {
	return &http.Request{ProtoMajor: 1, Header: http.Header{}}
}
