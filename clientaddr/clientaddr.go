// Package clientaddr names the client behind a request: the address that
// limits are counted against, so that a visitor who throws away its cookie
// is still the same visitor. Headers that name a client are believed only
// when the operator says a proxy in front sets them; otherwise anyone could
// be anyone by sending one.
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client address. The zero value trusts no
// header and uses the socket's address.
type Resolver struct {
	fly     bool           // Fly-Client-IP, set by Fly.io's proxy
	proxies []netip.Prefix // X-Forwarded-For hops appended by these are believed
}

// Parse reads a PARLEY_TRUSTED_PROXY setting: "" (no proxy: the socket's
// address), "fly" (Fly.io's proxy sets Fly-Client-IP), or a comma-separated
// list of the proxies' addresses or CIDR prefixes ("10.0.0.0/8,
// 127.0.0.1"), whose X-Forwarded-For entries are believed from the right
// until the first address that is not one of them.
func Parse(setting string) (Resolver, error) {
	var r Resolver
	for part := range strings.SplitSeq(setting, ",") {
		part = strings.TrimSpace(part)
		switch {
		case part == "":
		case strings.EqualFold(part, "fly"):
			r.fly = true
		case strings.Contains(part, "/"):
			p, err := netip.ParsePrefix(part)
			if err != nil {
				return Resolver{}, fmt.Errorf("trusted proxy %q: %w", part, err)
			}
			r.proxies = append(r.proxies, p.Masked())
		default:
			a, err := netip.ParseAddr(part)
			if err != nil {
				return Resolver{}, fmt.Errorf("trusted proxy %q: not \"fly\", an address or a CIDR prefix", part)
			}
			a = a.Unmap()
			r.proxies = append(r.proxies, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return r, nil
}

// Of returns the client address of r as a key for limits: an IPv4 address,
// or the /64 prefix of an IPv6 one (a single visitor commonly holds a whole
// /64). It is never empty: an unreadable address is "unknown", which all
// such requests then share.
func (res Resolver) Of(r *http.Request) string {
	return Key(res.addr(r))
}

func (res Resolver) addr(r *http.Request) netip.Addr {
	peer := socketAddr(r)
	if res.fly {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("Fly-Client-IP"))); err == nil {
			return a.Unmap()
		}
		return peer
	}
	if len(res.proxies) == 0 || !res.trusted(peer) {
		return peer
	}
	// Walk the chain from the right: each trusted proxy appended the
	// address it was reached from. The first untrusted one is the client;
	// anything left of it was written by the client and proves nothing.
	hops := forwardedFor(r)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		client = a.Unmap()
		if !res.trusted(client) {
			break
		}
	}
	return client
}

func (res Resolver) trusted(a netip.Addr) bool {
	for _, p := range res.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func forwardedFor(r *http.Request) []string {
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	return hops
}

func socketAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Key is the limit key of an address: IPv4 as it is, IPv6 by its /64.
func Key(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	default:
		p, _ := a.Prefix(64) // a valid IPv6 address has a /64
		return p.String()
	}
}
