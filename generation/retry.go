package generation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

// A model call that fails before its first token, for a reason that may
// pass (the provider's 429 or 5xx, a refused connection), is tried again:
// at most maxTries tries, all within retryWindow of the first.
const (
	maxTries    = 3
	retryWindow = 20 * time.Second
)

// stream asks the model for p's answer, written to w, trying again as the
// constants above allow. Between tries the answer shows "Retrying in 4s",
// waiting as long as the provider asked (Retry-After) or else 1 s, then 2 s.
// Nothing is retried once the model sent text: it is the answer's already.
func (m *Manager) stream(ctx context.Context, w *writer, p prompt) (llm.Finish, error) {
	start := time.Now()
	req := llm.Request{Model: p.model, Messages: p.messages, Variant: p.variant}
	for try := 1; ; try++ {
		finish, err := m.model.Stream(ctx, req, w.add)
		if ctx.Err() == nil {
			// A stop or a shutdown says nothing of the provider.
			m.cfg.Observer.ProviderUp(!llm.ProviderFault(err))
		}
		wait, ok := retryWait(err, try, time.Since(start))
		if !ok || w.hasText() || ctx.Err() != nil {
			return finish, err
		}
		w.log.Warn("model failed before its first token; trying again", "err", err, "try", try, "wait", wait)
		if !m.note(ctx, w, fmt.Sprintf("%s Retrying in %ds…", busyText(err), int((wait+time.Second-1)/time.Second))) {
			return finish, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return finish, fmt.Errorf("waiting to retry the model: %w", ctx.Err())
		case <-t.C:
		}
		if !m.note(ctx, w, "") {
			return finish, err
		}
	}
}

// retryWait says whether a model call that failed with err on try, elapsed
// after the first, is tried again, and after how long.
func retryWait(err error, try int, elapsed time.Duration) (time.Duration, bool) {
	var le *llm.Error
	if try >= maxTries || !errors.As(err, &le) || !le.Retryable() {
		return 0, false
	}
	wait := le.RetryAfter
	if wait <= 0 {
		wait = time.Second << (try - 1)
	}
	return wait, elapsed+wait <= retryWindow
}

// busyText says why an answer waits, for people.
func busyText(err error) string {
	var le *llm.Error
	if errors.As(err, &le) && le.Kind == llm.RateLimited {
		return "The model provider is busy."
	}
	return "The model provider did not answer."
}

// note shows text on w's answer while it waits; false when the answer is no
// longer w's (ended or superseded), which ends the tries.
func (m *Manager) note(ctx context.Context, w *writer, text string) bool {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	err := m.store.Note(nctx, w.conv, w.gen, text)
	if errors.Is(err, store.ErrStale) {
		return false
	}
	if err != nil {
		w.log.Warn("show a note on the answer", "err", err)
	}
	return true
}
