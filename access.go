package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/session"
)

// validateAccess checks the access settings (PARLEY_ACCESS and its
// companions) before anything starts.
func (c config) validateAccess() error {
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

// newAccess builds the access gate. Its key, which signs passphrase grants
// and derives signed-in users' owner IDs, comes from the newest session key,
// so every process that shares the session keys agrees. Without session
// keys it is random: grants and header-mode owners then last as long as
// the process.
func newAccess(cfg config, log *slog.Logger) (*access.Gate, error) {
	mode, err := access.ParseMode(cfg.Access)
	if err != nil {
		return nil, err
	}
	share, err := shareLinks(cfg.ShareLinks)
	if err != nil {
		return nil, err
	}
	key := session.NewKey()
	if keys := sessionKeys(cfg); len(keys) > 0 {
		h := hmac.New(sha256.New, keys[0])
		h.Write([]byte("parley-access-key-v1"))
		key = h.Sum(nil)
	}
	g, err := access.New(access.Config{
		Mode: mode, Code: cfg.AccessCode, Header: strings.TrimSpace(cfg.AccessHeader),
		ShareLinks: share, Key: key, MaxAge: cfg.SessionMaxAge,
	})
	if err != nil {
		return nil, err
	}
	links := "anyone with a conversation's link may read it"
	if !share {
		links = "reading a conversation needs access too"
	}
	switch mode {
	case access.Code:
		log.Info("access: private, by passphrase (PARLEY_ACCESS_CODE); wrong guesses are limited per client address", "share_links", share, "note", links)
	case access.Header:
		log.Warn("access: private, by identity header; the proxy in front MUST strip this header from every client request and set it itself: anyone who can reach Parley without going through it can claim to be any user",
			"header", g.HeaderName(), "share_links", share, "note", links)
		if len(sessionKeys(cfg)) == 0 {
			log.Warn("PARLEY_ACCESS=header without PARLEY_SESSION_KEYS: users' owner IDs come from a random key, so their conversations leave their lists when this process restarts and differ between processes; set PARLEY_SESSION_KEYS")
		}
	}
	return g, nil
}
