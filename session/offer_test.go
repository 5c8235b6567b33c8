package session_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/session"
)

const (
	offerOwner = "AAAAAAAAAAAAAAAAAAAAAA"
	otherOwner = "BBBBBBBBBBBBBBBBBBBBBB"
	offerID    = "abcdefghijklmnopqrstuvwxyz"
)

// TestOffer: an offer opens for the owner it was sealed for, with any of
// the keys, until OfferTTL; never for another owner, after OfferTTL, from
// the future, with a dropped key, or as any other spelling or a bare ID.
func TestOffer(t *testing.T) {
	t.Parallel()
	oldKey, newKey := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	old, _ := session.New(time.Hour, oldKey)
	old.SetNow(clock)
	rotated, _ := session.New(time.Hour, newKey, oldKey)
	rotated.SetNow(clock)
	dropped, _ := session.New(time.Hour, newKey)
	dropped.SetNow(clock)

	v := old.SealOffer(offerID, offerOwner)
	if !strings.HasPrefix(v, offerID+"."+strconv.FormatInt(now.Unix(), 10)+".") {
		t.Fatalf("offer %q is not ID.unixSeconds.MAC", v)
	}
	if id, err := old.OpenOffer(v, offerOwner); err != nil || id != offerID {
		t.Fatalf("OpenOffer(SealOffer) = %q, %v", id, err)
	}
	if _, err := old.OpenOffer(v, otherOwner); err == nil {
		t.Error("another owner's offer was accepted")
	}
	if _, err := old.OpenOffer(v, ""); err == nil {
		t.Error("an offer was accepted without its owner")
	}
	// Rotation: the old key's offer still opens; a dropped key's does not.
	if id, err := rotated.OpenOffer(v, offerOwner); err != nil || id != offerID {
		t.Errorf("after rotation: %q, %v", id, err)
	}
	if _, err := dropped.OpenOffer(v, offerOwner); err == nil {
		t.Error("an offer of a dropped key was accepted")
	}
	if _, err := rotated.OpenOffer(rotated.SealOffer(offerID, offerOwner), offerOwner); err != nil {
		t.Errorf("the newest key's offer: %v", err)
	}
	// A session cookie is not an offer, nor the reverse.
	if _, err := old.OpenOffer(old.Sign(offerOwner, now), offerOwner); err == nil {
		t.Error("a session cookie was accepted as an offer")
	}
	if _, err := old.Verify(v); err == nil {
		t.Error("an offer was accepted as a session cookie")
	}
	mac := v[strings.LastIndex(v, ".")+1:]
	for _, bad := range []string{
		"", ".", "..", offerID, offerID + ".", offerID + "..", offerID + "." + mac,
		"zbcdefghijklmnopqrstuvwxyz" + v[len(offerID):], // another ID, this MAC
		strings.Replace(v, ".1", ".01", 1),              // another spelling of the time
		strings.Replace(v, ".1800000000.", ".1800000001.", 1),
		v + "A", v[:len(v)-1], strings.Replace(v, ".", "..", 1), "x." + v,
	} {
		if id, err := old.OpenOffer(bad, offerOwner); err == nil {
			t.Errorf("OpenOffer(%q) accepted %q", bad, id)
		}
	}

	// Expiry, on the Manager's clock.
	now = now.Add(session.OfferTTL - time.Second)
	if _, err := old.OpenOffer(v, offerOwner); err != nil {
		t.Errorf("an offer just under OfferTTL old: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := old.OpenOffer(v, offerOwner); err == nil {
		t.Error("an expired offer was accepted")
	}
	// From the future (beyond the clock skew allowed).
	now = time.Unix(1_800_000_000, 0)
	future := old.SealOffer(offerID, offerOwner)
	now = now.Add(-time.Hour)
	if _, err := old.OpenOffer(future, offerOwner); err == nil {
		t.Error("an offer issued in the future was accepted")
	}
}

// FuzzOffer: any string, for either owner, never panics, and is accepted
// only if it is exactly what SealOffer made for that owner.
func FuzzOffer(f *testing.F) {
	m := newManager(f, key)
	now := time.Unix(1_800_000_000, 0)
	m.SetNow(func() time.Time { return now })
	valid := m.SealOffer(offerID, offerOwner)
	f.Add(valid, false)
	f.Add(valid, true)
	f.Add(m.SealOffer("x", offerOwner), false)
	f.Add(m.Sign(offerOwner, now), false)
	f.Add(offerID, false)
	f.Add(offerID+".1800000000.", false)
	f.Add("", false)
	f.Add("....", true)
	f.Add("\x00\xff.\x00", false)
	f.Fuzz(func(t *testing.T, v string, other bool) {
		owner := offerOwner
		if other {
			owner = otherOwner
		}
		id, err := m.OpenOffer(v, owner)
		if err != nil {
			if id != "" {
				t.Fatalf("OpenOffer(%q) refused it but returned %q", v, id)
			}
			return
		}
		parts := strings.Split(v, ".")
		if len(parts) != 3 {
			t.Fatalf("OpenOffer(%q) accepted a value of %d fields", v, len(parts))
		}
		secs, _ := strconv.ParseInt(parts[1], 10, 64)
		issued := time.Unix(secs, 0)
		m.SetNow(func() time.Time { return issued })
		sealed := m.SealOffer(id, owner)
		m.SetNow(func() time.Time { return now })
		if sealed != v {
			t.Fatalf("OpenOffer(%q) accepted %q for %s, which SealOffer would not have made (%q)", v, id, owner, sealed)
		}
		if other := map[string]string{offerOwner: otherOwner, otherOwner: offerOwner}[owner]; other != "" {
			if _, err := m.OpenOffer(v, other); err == nil {
				t.Fatalf("OpenOffer(%q) accepted for both owners", v)
			}
		}
	})
}
