package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"strings"

	"github.com/parley-chat/parley/access"
	"github.com/parley-chat/parley/internal/config"
	"github.com/parley-chat/parley/session"
)

// newAccess builds the access gate. Its key, which signs passphrase grants
// and derives signed-in users' owner IDs, comes from the newest session key,
// so every process that shares the session keys agrees. Without session
// keys it is random: grants and header-mode owners then last as long as
// the process.
func newAccess(cfg config.Config, log *slog.Logger) (*access.Gate, error) {
	mode, share := cfg.AccessMode(), cfg.SharesLinks()
	key := session.NewKey()
	if keys := cfg.SessionKeyring(); len(keys) > 0 {
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
		if len(cfg.SessionKeyring()) == 0 {
			log.Warn("PARLEY_ACCESS=header without PARLEY_SESSION_KEYS: users' owner IDs come from a random key, so their conversations leave their lists when this process restarts and differ between processes; set PARLEY_SESSION_KEYS")
		}
	}
	return g, nil
}
