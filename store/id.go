package store

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
)

// ID is a Redis stream entry ID: the position of an event in a conversation's
// log. It is the SSE event id and the resume cursor, so it travels through
// browsers and must be parsed defensively.
type ID struct {
	Ms  uint64
	Seq uint64
}

// maxIDLen bounds the input ParseID looks at: two uint64s and a dash.
const maxIDLen = 20 + 1 + 20

// ParseID parses "ms-seq" as Redis writes it. It rejects everything else,
// including the shorthand forms Redis accepts ("123", "-", "+", "$"), because a
// cursor that came from us always has both parts.
func ParseID(s string) (ID, error) {
	if s == "" || len(s) > maxIDLen {
		return ID{}, ErrBadID
	}
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok || !digits(msPart) || !digits(seqPart) {
		return ID{}, ErrBadID
	}
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return ID{}, ErrBadID
	}
	seq, err := strconv.ParseUint(seqPart, 10, 64)
	if err != nil {
		return ID{}, ErrBadID
	}
	// Lua numbers are doubles: keep the millisecond part exact inside scripts.
	if ms > 1<<53 {
		return ID{}, ErrBadID
	}
	return ID{Ms: ms, Seq: seq}, nil
}

// digits reports whether s is a non-empty run of ASCII digits (no sign, no
// spaces), so that "+1-0" or " 1-0" are not accepted by strconv's leniency.
func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the ID the way Redis does.
func (id ID) String() string {
	return fmt.Sprintf("%d-%d", id.Ms, id.Seq)
}

// IsZero reports whether id is the zero ID, which precedes every entry.
func (id ID) IsZero() bool { return id.Ms == 0 && id.Seq == 0 }

// Compare returns -1, 0 or +1 as id is before, equal to or after other.
func (id ID) Compare(other ID) int {
	switch {
	case id.Ms < other.Ms:
		return -1
	case id.Ms > other.Ms:
		return 1
	case id.Seq < other.Seq:
		return -1
	case id.Seq > other.Seq:
		return 1
	}
	return 0
}

// Less reports whether id comes before other in the log.
func (id ID) Less(other ID) bool { return id.Compare(other) < 0 }

// idLen is the length of NewID's output: 128 random bits in base32.
const idLen = 26

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns a new unguessable identifier (128 random bits), used for
// conversations, generations and idempotency keys.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

// ValidConversationID reports whether id could have come from NewID. Anything
// else is rejected before it reaches a Redis key.
func ValidConversationID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
