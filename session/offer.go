package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// OfferTTL is how long an offer may be redeemed after it was issued.
const OfferTTL = 24 * time.Hour

// maxOfferID bounds the ID an offer carries (conversation IDs are 26
// characters).
const maxOfferID = 64

// ErrOffer is returned for an offer that was not sealed by one of the keys
// for this owner, or has expired.
var ErrOffer = errors.New("invalid or expired offer")

// SealOffer returns an offer of id to owner: the server's word that owner
// may create the conversation id, for OfferTTL. The value is
// "ID.unixSeconds.MAC", the MAC (newest key) covering the ID, the issue time
// and the owner, who is not in the value: the offer is good only for the
// browser it was issued to. id must be non-empty, at most 64 bytes, without
// a dot (conversation IDs are base32).
func (m *Manager) SealOffer(id, owner string) string {
	return m.sealOffer(id, owner, m.now())
}

func (m *Manager) sealOffer(id, owner string, t time.Time) string {
	stamp := strconv.FormatInt(t.Unix(), 10)
	return id + "." + stamp + "." + base64.RawURLEncoding.EncodeToString(offerMAC(m.keys[0], id, stamp, owner))
}

// OpenOffer returns the ID of an offer sealed by SealOffer, with any of the
// keys, for owner, within OfferTTL. Anything else (forged, damaged, expired,
// another owner's, a bare ID) is ErrOffer.
func (m *Manager) OpenOffer(value, owner string) (string, error) {
	id, _, err := m.openOffer(value, owner)
	return id, err
}

func (m *Manager) openOffer(value, owner string) (string, time.Time, error) {
	id, rest, ok := strings.Cut(value, ".")
	if !ok || id == "" || len(id) > maxOfferID {
		return "", time.Time{}, ErrOffer
	}
	stamp, sig, ok := strings.Cut(rest, ".")
	// The stamp is spelled as SealOffer writes it: digits, no leading zero.
	if !ok || len(stamp) == 0 || len(stamp) > 12 || strings.TrimLeft(stamp, "0123456789") != "" || stamp[0] == '0' {
		return "", time.Time{}, ErrOffer
	}
	secs, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return "", time.Time{}, ErrOffer
	}
	issued, now := time.Unix(secs, 0), m.now()
	if issued.After(now.Add(clockSkew)) || now.Sub(issued) > OfferTTL {
		return "", time.Time{}, ErrOffer
	}
	for _, k := range m.keys {
		// Compare the encoded form: only the spelling SealOffer writes counts.
		want := base64.RawURLEncoding.EncodeToString(offerMAC(k, id, stamp, owner))
		if hmac.Equal([]byte(sig), []byte(want)) {
			return id, issued, nil
		}
	}
	return "", time.Time{}, ErrOffer
}

// offerMAC signs an offer. Its own prefix keeps an offer from ever passing
// for a cookie, or a cookie for an offer. The fields are unambiguous: the ID
// has no dot, the stamp only digits, and the owner comes last.
func offerMAC(key []byte, id, stamp, owner string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("parley-offer-v1:"))
	h.Write([]byte(id + "." + stamp + "." + owner))
	return h.Sum(nil)
}
