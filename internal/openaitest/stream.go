package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The wire shapes of a streamed chat completion, fields in OpenAI's order.
type (
	chunk struct {
		ID                string           `json:"id"`
		Object            string           `json:"object"`
		Created           int64            `json:"created"`
		Model             string           `json:"model"`
		SystemFingerprint string           `json:"system_fingerprint"`
		Choices           []choice         `json:"choices"`
		Usage             *json.RawMessage `json:"usage,omitempty"` // present (null or not) only when asked for
	}
	choice struct {
		Index        int       `json:"index"`
		Delta        delta     `json:"delta"`
		Logprobs     *struct{} `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	}
	delta struct {
		Role    string           `json:"role,omitempty"`
		Content *string          `json:"content,omitempty"`
		Refusal *json.RawMessage `json:"refusal,omitempty"`
	}
)

// pieces is what r streams: its Text, or DefaultAnswer word by word.
func (r Reply) pieces() []string {
	if r.Text != nil {
		return r.Text
	}
	var out []string
	for i, w := range strings.Fields(DefaultAnswer) {
		if i > 0 {
			w = " " + w
		}
		out = append(out, w)
	}
	return out
}

// stream writes reply as OpenAI streams a chat completion: a first chunk
// with the role and empty content, a chunk per piece, a chunk with an
// empty delta and the finish reason, the usage chunk when the request
// asked for it, then data: [DONE].
func (s *Server) stream(w http.ResponseWriter, r *http.Request, id string, req chatRequest, reply Reply) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)

	null := json.RawMessage("null")
	base := chunk{ID: id, Object: "chat.completion.chunk", Created: time.Now().Unix(), Model: req.Model, SystemFingerprint: "fp_openaitest"}
	if req.StreamOptions.IncludeUsage {
		base.Usage = &null
	}
	send := func(c chunk) {
		b, err := json.Marshal(c)
		if err != nil {
			panic(err) // the shapes above always marshal
		}
		_, _ = fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	withChoice := func(ch choice) chunk {
		c := base
		c.Choices = []choice{ch}
		return c
	}

	empty := ""
	send(withChoice(choice{Delta: delta{Role: "assistant", Content: &empty, Refusal: &null}}))
	pieces := reply.pieces()
	for i, p := range pieces {
		if !s.pause(r, reply.Delay) {
			return
		}
		send(withChoice(choice{Delta: delta{Content: &p}}))
		if reply.CutAfter > 0 && i+1 >= reply.CutAfter {
			// Ends the connection without ending the chunked body.
			panic(http.ErrAbortHandler)
		}
	}
	switch reply.Finish {
	case "-":
	case "":
		stop := "stop"
		send(withChoice(choice{FinishReason: &stop}))
	default:
		send(withChoice(choice{FinishReason: &reply.Finish}))
	}
	if req.StreamOptions.IncludeUsage {
		prompt := 0
		for _, m := range req.Messages {
			prompt += len(m.Content)/4 + 1
		}
		u := json.RawMessage(fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, prompt, len(pieces), prompt+len(pieces)))
		c := base
		c.Choices = []choice{}
		c.Usage = &u
		send(c)
	}
	if !reply.NoDone {
		_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
		if flusher != nil {
			flusher.Flush()
		}
	}
}
