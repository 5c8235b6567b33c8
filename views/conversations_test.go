package views

import (
	"testing"
	"time"
)

func TestWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 1, 1, 9, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2027, 1, 1, 8, 5, 0, 0, time.UTC), "08:05"},
		{time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC), "Yesterday"}, // across the year's end
		{time.Date(2026, 12, 30, 12, 0, 0, 0, time.UTC), "30 Dec 2026"},
		{time.Date(2027, 1, 1, 10, 0, 0, 0, time.FixedZone("UTC+2", 2*3600)), "08:00"}, // shown in UTC
	} {
		if got := When(tt.t, now); got != tt.want {
			t.Errorf("When(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
	if got := When(time.Date(2027, 3, 4, 0, 0, 0, 0, time.UTC), time.Date(2027, 5, 1, 0, 0, 0, 0, time.UTC)); got != "4 Mar" {
		t.Errorf("earlier this year: %q, want 4 Mar", got)
	}
}
