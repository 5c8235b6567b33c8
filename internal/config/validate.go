package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/access"
)

// validate checks the settings together, so that a wrong one stops the
// process before anything starts, with every problem named at once.
func (c Config) validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	positive("max-message-bytes", c.MaxMessageBytes)
	positive("max-body-bytes", c.MaxBodyBytes)
	positive("max-answer-bytes", c.MaxAnswerBytes)
	positive("max-viewers", c.MaxViewers)
	positive("max-generations", c.MaxGenerations)
	positive("viewer-queue", c.ViewerQueue)
	positive("log-max-len", c.LogMaxLen)
	if c.MaxBodyBytes < c.MaxMessageBytes {
		errs = append(errs, fmt.Errorf("max-body-bytes (%d) must be at least max-message-bytes (%d)", c.MaxBodyBytes, c.MaxMessageBytes))
	}
	for name, d := range map[string]time.Duration{
		"flush-interval": c.FlushInterval, "lease-ttl": c.LeaseTTL, "sweep-interval": c.SweepInterval,
		"heartbeat": c.Heartbeat, "shutdown-timeout": c.ShutdownTimeout, "model-idle-timeout": c.ModelIdleTimeout,
		"redis-timeout": c.RedisTimeout, "request-timeout": c.RequestTimeout, "session-max-age": c.SessionMaxAge,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.LeaseTTL < 3*c.FlushInterval {
		errs = append(errs, fmt.Errorf("lease-ttl (%s) must be much longer than flush-interval (%s)", c.LeaseTTL, c.FlushInterval))
	}
	if c.FrameBudget < 0 || c.FrameMaxHold < 0 {
		errs = append(errs, fmt.Errorf("frame-budget (%g) and frame-max-hold (%s) must not be negative", c.FrameBudget, c.FrameMaxHold))
	}
	if c.RoomWrites < 0 {
		errs = append(errs, fmt.Errorf("room-writes-per-second must not be negative, got %d (0 turns the spacing off)", c.RoomWrites))
	}
	if c.DemoTPS <= 0 {
		errs = append(errs, fmt.Errorf("demo-tokens-per-second must be positive, got %g", c.DemoTPS))
	}
	errs = append(errs, c.validateAccess(), c.validateLog())
	if _, _, err := c.RedisOptions(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validateAccess checks PARLEY_ACCESS and its companions.
func (c Config) validateAccess() error {
	mode, err := access.ParseMode(c.Access)
	if err != nil {
		return err
	}
	var errs []error
	if _, err := shareLinks(c.ShareLinks); err != nil {
		errs = append(errs, err)
	}
	if mode == access.Code && c.AccessCode == "" {
		errs = append(errs, errors.New("PARLEY_ACCESS=code needs the passphrase in PARLEY_ACCESS_CODE (env only: it is a secret)"))
	}
	if mode == access.Header && strings.TrimSpace(c.AccessHeader) == "" {
		errs = append(errs, errors.New("PARLEY_ACCESS=header needs PARLEY_ACCESS_HEADER, the header in which the identity proxy names the user"))
	}
	return errors.Join(errs...)
}

// validateLog checks the settings that Logger reads.
func (c Config) validateLog() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("log-level %q: use debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log-format %q: use text or json", c.LogFormat)
	}
	return nil
}

// AccessMode is PARLEY_ACCESS, validated by Parse.
func (c Config) AccessMode() access.Mode {
	mode, _ := access.ParseMode(c.Access)
	return mode
}

// SharesLinks reports whether a conversation's link reads without access
// (PARLEY_SHARE_LINKS, validated by Parse).
func (c Config) SharesLinks() bool {
	share, _ := shareLinks(c.ShareLinks)
	return share
}

// shareLinks reads PARLEY_SHARE_LINKS: on or off (or a boolean).
func shareLinks(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "on", "true", "1", "yes":
		return true, nil
	case "off", "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("PARLEY_SHARE_LINKS=%q: use on or off", s)
}

// ModelList is PARLEY_MODELS as names: trimmed, without empty ones or
// repeats, in the order given; none when it is unset.
func (c Config) ModelList() []string {
	var names []string
	for n := range strings.SplitSeq(c.Models, ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

// SessionKeyring is the configured session keys, newest first:
// PARLEY_SESSION_KEYS, or else PARLEY_SESSION_KEY; none when neither is set.
func (c Config) SessionKeyring() [][]byte {
	var keys [][]byte
	for k := range strings.SplitSeq(c.SessionKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, []byte(k))
		}
	}
	if len(keys) == 0 && c.SessionKey != "" {
		keys = [][]byte{[]byte(c.SessionKey)}
	}
	return keys
}
