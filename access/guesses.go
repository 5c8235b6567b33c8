package access

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// GuessKeyPrefix starts the key that counts a client address's passphrase
// tries: parley:guess:ADDR.
const GuessKeyPrefix = "parley:guess:"

// Guesses counts passphrase tries per client address in Redis, so that
// every process shares the count.
type Guesses struct {
	rdb redis.Scripter
}

// NewGuesses returns a counter on rdb (a client or a cluster client).
func NewGuesses(rdb redis.Scripter) *Guesses { return &Guesses{rdb: rdb} }

// addGuess is INCR, and PEXPIRE when the key has no expiry yet: the window
// starts at an address's first try. Setting the expiry whenever there is
// none (not only when the count is 1) means no key can outlive its window.
var addGuess = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// refundGuess gives a try back, only while its window lasts (a DECR after
// the key expired would make a key without expiry).
var refundGuess = redis.NewScript(`
if redis.call('PTTL', KEYS[1]) > 0 then
	return redis.call('DECR', KEYS[1])
end
return 0
`)

// Add counts one try from addr and returns the tries in the current window
// (this one included) and the time left in it.
func (g *Guesses) Add(ctx context.Context, addr string, window time.Duration) (int64, time.Duration, error) {
	v, err := addGuess.Run(ctx, g.rdb, []string{GuessKeyPrefix + addr}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("count passphrase tries: %w", err)
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("count passphrase tries: unexpected reply %v", v)
	}
	return v[0], time.Duration(v[1]) * time.Millisecond, nil
}

// Refund takes back a try that Add counted: a right passphrase is not a
// wrong guess.
func (g *Guesses) Refund(ctx context.Context, addr string) error {
	if err := refundGuess.Run(ctx, g.rdb, []string{GuessKeyPrefix + addr}).Err(); err != nil {
		return fmt.Errorf("refund a passphrase try: %w", err)
	}
	return nil
}
