package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RenewCall is one renewal of the lease of generation Gen of Conv.
type RenewCall struct{ Conv, Gen string }

// RenewReply is what one renewal found. Stop: a stop was requested. Err is
// ErrStale (the answer was ended or superseded: the generation must stop
// writing), or the error of the renewal's round trip, after which the lease
// may or may not have been renewed (renew again).
type RenewReply struct {
	Stop bool
	Err  error
}

// Renew extends gen's lease and reports whether a stop was requested. A
// lease that ran out (Redis was unreachable for longer than it) is taken
// again if gen's answer is still running. ErrStale means the answer was
// ended or superseded: the generation must stop writing. It is RenewBatch of
// one call.
func (s *Store) Renew(ctx context.Context, conv, gen string) (stop bool, err error) {
	var one [1]RenewReply
	r := s.RenewBatch(ctx, []RenewCall{{Conv: conv, Gen: gen}}, one[:0])[0]
	return r.Stop, r.Err
}

// RenewBatch renews the leases of many generations in one pipelined round
// trip, each as Renew would, and appends their replies to out in the order
// of calls. The same round trip registers them all with the sweepers
// (gensKey), scored by their new deadlines, in one ZADD: a process's
// generations then cost Redis one round trip per renewal period, not two
// each. Each renewal is its own script run, so a stale or stopped
// generation is told alone.
//
// On a Redis Cluster the client splits the pipeline by node; an error then
// fails only the renewals it reached (all of them when it is the ZADD's: a
// generation that is not registered would not be ended by a sweeper if its
// process died). When Redis has lost the script, the renewals it refused are
// sent again, once, after loading it.
func (s *Store) RenewBatch(ctx context.Context, calls []RenewCall, out []RenewReply) []RenewReply {
	if len(calls) == 0 {
		return out
	}
	deadline := float64(time.Now().Add(s.cfg.LeaseTTL).UnixMilli())
	tracked := make([]redis.Z, len(calls))
	for i, c := range calls {
		tracked[i] = redis.Z{Score: deadline, Member: c.Conv}
	}
	var track *redis.IntCmd
	cmds := s.evalBatch(ctx, renewScript, len(calls), func(i int) ([]string, []any) {
		return s.renewArgs(calls[i])
	}, func(pipe redis.Pipeliner) { track = pipe.ZAdd(ctx, gensKey, tracked...) })
	for _, cmd := range cmds {
		out = append(out, parseRenew(cmd, track.Err()))
	}
	return out
}

// renewArgs builds the keys and arguments of renewScript.
func (s *Store) renewArgs(c RenewCall) ([]string, []any) {
	return s.convArgs(c.Conv, nil, renewArgv{Gen: c.Gen, LeaseMs: s.cfg.LeaseTTL.Milliseconds()})
}

// parseRenew reads renewScript's reply; trackErr is the ZADD's error.
func parseRenew(cmd *redis.Cmd, trackErr error) RenewReply {
	res, err := cmd.Text()
	if err != nil {
		return RenewReply{Err: fmt.Errorf("renew lease: %w", err)}
	}
	if trackErr != nil {
		return RenewReply{Err: fmt.Errorf("track generation: %w", trackErr)}
	}
	switch res {
	case "ok":
		return RenewReply{}
	case "stop":
		return RenewReply{Stop: true}
	case "stale":
		return RenewReply{Err: ErrStale}
	}
	return RenewReply{Err: fmt.Errorf("renew lease: unexpected reply %q", res)}
}
