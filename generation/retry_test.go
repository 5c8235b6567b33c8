package generation

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/llm"
)

// TestRetryWait: which failures are tried again, after how long, and that
// every try fits in the window.
func TestRetryWait(t *testing.T) {
	t.Parallel()
	limited := func(after time.Duration) error { return &llm.Error{Kind: llm.RateLimited, RetryAfter: after} }
	tests := []struct {
		name    string
		err     error
		try     int
		elapsed time.Duration
		wait    time.Duration
		ok      bool
	}{
		{"429 without Retry-After: 1 s", limited(0), 1, 0, time.Second, true},
		{"then 2 s", limited(0), 2, time.Second, 2 * time.Second, true},
		{"never a fourth try", limited(0), 3, 3 * time.Second, 0, false},
		{"Retry-After honoured", limited(7 * time.Second), 1, 0, 7 * time.Second, true},
		{"Retry-After beyond the window: no retry", limited(25 * time.Second), 1, 0, 25 * time.Second, false},
		{"late in the window: no retry", limited(5 * time.Second), 2, 16 * time.Second, 5 * time.Second, false},
		{"5xx or refused connection", &llm.Error{Kind: llm.Unavailable}, 1, 0, time.Second, true},
		{"a rejected key is not retried", &llm.Error{Kind: llm.Auth}, 1, 0, 0, false},
		{"a bad request is not retried", &llm.Error{Kind: llm.BadRequest}, 1, 0, 0, false},
		{"a timeout mid-answer is not retried", &llm.Error{Kind: llm.Timeout}, 1, 0, 0, false},
		{"not a model error", errors.New("context canceled"), 1, 0, 0, false},
		{"success", nil, 1, 0, 0, false},
	}
	for _, tt := range tests {
		wait, ok := retryWait(tt.err, tt.try, tt.elapsed)
		if ok != tt.ok || (ok && wait != tt.wait) {
			t.Errorf("%s: wait %v ok %v, want %v %v", tt.name, wait, ok, tt.wait, tt.ok)
		}
	}
}
