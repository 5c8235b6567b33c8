package store

import (
	"errors"
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		// Valid: what Redis writes.
		{in: "1-0", want: ID{Ms: 1}, ok: true},
		{in: "0-0", want: ID{}, ok: true},
		{in: "1732572000000-5", want: ID{Ms: 1732572000000, Seq: 5}, ok: true},
		{in: "9007199254740992-0", want: ID{Ms: 1 << 53}, ok: true}, // 2^53: still exact in Lua
		{in: "1-18446744073709551615", want: ID{Ms: 1, Seq: 1<<64 - 1}, ok: true},
		{in: "9007199254740992-18446744073709551615", want: ID{Ms: 1 << 53, Seq: 1<<64 - 1}, ok: true},
		// Leading zeros are accepted and mean the same number (Redis reads them
		// so too); callers only ever use id.String(), which is canonical.
		{in: "01-00", want: ID{Ms: 1}, ok: true},

		// Invalid.
		{in: ""},
		{in: "abc"},
		{in: "1"},                            // Redis shorthand, not a cursor we wrote
		{in: "-"},                            // XRANGE minimum
		{in: "+"},                            // XRANGE maximum
		{in: "$"},                            // XREAD "new entries only"
		{in: "*"},                            // XADD auto id
		{in: "1-"},                           // missing sequence
		{in: "-1"},                           // missing milliseconds
		{in: "+1-0"},                         // strconv would accept the sign
		{in: "1-+0"},                         // ditto, in the sequence
		{in: " 1-0"},                         // leading space
		{in: "1-0 "},                         // trailing space
		{in: "1-0\n"},                        // trailing newline (header injection attempt)
		{in: "1--0"},                         // two dashes
		{in: "1-0-0"},                        // three parts
		{in: "１-0"},                          // full-width digit one (U+FF11)
		{in: "1-０"},                          // full-width digit zero
		{in: "0x1-0"},                        // hex
		{in: "1_000-0"},                      // Go digit separators
		{in: "1.5-0"},                        // decimal point
		{in: "1e3-0"},                        // exponent
		{in: "99999999999999999999999-0"},    // ms overflows uint64 (and is too long)
		{in: "18446744073709551616-0"},       // ms = 2^64: overflows by one
		{in: "1-18446744073709551616"},       // seq = 2^64: overflows by one
		{in: "9007199254740993-0"},           // ms = 2^53+1: not exact as a Lua number
		{in: "18446744073709551615-0"},       // ms = 2^64-1: parses as uint64, but > 2^53
		{in: "1-" + strings.Repeat("0", 40)}, // longer than any ID
		{in: strings.Repeat("9", 20) + "-" + strings.Repeat("9", 20)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrBadID) {
					t.Fatalf("ParseID(%q) = %v, %v; want ErrBadID", tt.in, got, err)
				}
				if got != (ID{}) {
					t.Fatalf("ParseID(%q) returned %v with its error; want the zero ID", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestIDString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   ID
		want string
	}{
		{ID{}, "0-0"},
		{ID{Ms: 1}, "1-0"},
		{ID{Ms: 1732572000000, Seq: 5}, "1732572000000-5"},
		{ID{Ms: 1 << 53, Seq: 1<<64 - 1}, "9007199254740992-18446744073709551615"},
	}
	for _, tt := range tests {
		if got := tt.id.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.id, got, tt.want)
		}
		back, err := ParseID(tt.id.String())
		if err != nil || back != tt.id {
			t.Errorf("ParseID(%q) = %+v, %v; want %+v", tt.id.String(), back, err, tt.id)
		}
		if tt.id.IsZero() != (tt.want == "0-0") {
			t.Errorf("%+v.IsZero() = %v", tt.id, tt.id.IsZero())
		}
	}
}

func TestIDCompare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b ID
		want int
	}{
		{ID{}, ID{}, 0},
		{ID{Ms: 1, Seq: 2}, ID{Ms: 1, Seq: 2}, 0},
		{ID{Ms: 1, Seq: 0}, ID{Ms: 1, Seq: 1}, -1},
		{ID{Ms: 1, Seq: 9}, ID{Ms: 2, Seq: 0}, -1}, // ms decides before seq
		{ID{Ms: 2, Seq: 0}, ID{Ms: 1, Seq: 1<<64 - 1}, 1},
		{ID{Ms: 10, Seq: 0}, ID{Ms: 9, Seq: 0}, 1}, // numeric, not string order
		{ID{}, ID{Seq: 1}, -1},
		{ID{Ms: 1 << 53}, ID{Ms: 1<<53 - 1, Seq: 1<<64 - 1}, 1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := tt.b.Compare(tt.a); got != -tt.want {
			t.Errorf("%v.Compare(%v) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
		if got := tt.a.Less(tt.b); got != (tt.want < 0) {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.a, tt.b, got, tt.want < 0)
		}
		if got := tt.b.Less(tt.a); got != (tt.want > 0) {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.b, tt.a, got, tt.want > 0)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"1-0", "0-0", "1732572000000-5", "9007199254740992-18446744073709551615",
		"9007199254740993-0", "01-00", "", "-", "+", "$", "1", "1-", "-1", "+1-0",
		" 1-0", "1-0 ", "1--0", "１-0", "99999999999999999999999-0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			if !errors.Is(err, ErrBadID) {
				t.Fatalf("ParseID(%q) error %v is not ErrBadID", s, err)
			}
			if id != (ID{}) {
				t.Fatalf("ParseID(%q) returned %+v with its error", s, id)
			}
			return
		}
		// Accepted input is ASCII digits around exactly one dash.
		if strings.Count(s, "-") != 1 {
			t.Fatalf("ParseID(%q) accepted an input without exactly one dash", s)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c != '-' && (c < '0' || c > '9') {
				t.Fatalf("ParseID(%q) accepted byte %q", s, c)
			}
		}
		if id.Ms > 1<<53 {
			t.Fatalf("ParseID(%q) = %+v: ms above 2^53 is not exact in Lua", s, id)
		}
		// String is canonical: it parses back to the same ID and is a fixed point.
		str := id.String()
		back, err := ParseID(str)
		if err != nil {
			t.Fatalf("ParseID(%q) = %+v, but its String %q does not parse: %v", s, id, str, err)
		}
		if back != id {
			t.Fatalf("ParseID(%q) = %+v, ParseID(%q) = %+v", s, id, str, back)
		}
		if back.String() != str {
			t.Fatalf("String is not canonical: %q -> %q", str, back.String())
		}
		// Without leading zeros, the input is already canonical.
		ms, seq, _ := strings.Cut(s, "-")
		if (len(ms) == 1 || ms[0] != '0') && (len(seq) == 1 || seq[0] != '0') && str != s {
			t.Fatalf("ParseID(%q).String() = %q", s, str)
		}
	})
}
