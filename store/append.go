package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// AppendCall is one append of text to the answer generation Gen of Conv
// is writing.
type AppendCall struct {
	Conv, Gen, Text string
	// Offset is the answer's length in bytes before Text (0 for the first
	// append; AppendReply.Length of the one before). A retry of an append
	// whose reply was lost then appends only the part that is not stored
	// yet, so retrying after any error never doubles text. -1 skips the check.
	Offset int
	// Got is when the generation got Text; zero when unknown. The notice
	// carries it, so that whichever process writes the frame to a viewer can
	// measure the latency from token to frame.
	Got time.Time
}

// AppendReply is what one append did. Err is ErrStale (the answer was ended
// or superseded: the generation must stop without writing anything more),
// or the error of this append's round trip, after which the append may or
// may not have run (retry it with the same Offset).
type AppendReply struct {
	Result AppendResult
	ID     string // the delta's log entry ID
	Length int    // the answer's length after the append
	Err    error
}

// Append adds c.Text to the answer of generation c.Gen, appends the delta
// event and publishes it, and renews the generation's lease as Renew does,
// in one round trip. Its cost does not grow with the answer: the text is
// appended to a key of its own. It is AppendBatch of one call; the error is
// the reply's Err.
func (s *Store) Append(ctx context.Context, c AppendCall) (AppendReply, error) {
	var one [1]AppendReply
	r := s.AppendBatch(ctx, []AppendCall{c}, one[:0])[0]
	return r, r.Err
}

// AppendBatch runs the appends of many generations in one pipelined round
// trip, each as Append would, and appends their replies to out
// in the order of calls. The answers a process writes then cost Redis one
// round trip per batch, not one each, and no generation waits for a pooled
// connection behind the others. Each append is its own script run, so a
// stale or stopped generation is refused alone, and its neighbours in the
// batch are unaffected.
//
// On a Redis Cluster the client splits the pipeline by node; an error then
// fails only the appends it reached. When Redis has lost the script (a
// restart, SCRIPT FLUSH, a promoted replica), the appends it refused are
// sent again, once, after loading it.
func (s *Store) AppendBatch(ctx context.Context, calls []AppendCall, out []AppendReply) []AppendReply {
	if len(calls) == 0 {
		return out
	}
	cmds := s.evalBatch(ctx, appendScript, len(calls), func(i int) ([]string, []any) {
		return s.appendArgs(calls[i])
	}, nil)
	for _, cmd := range cmds {
		out = append(out, parseAppend(cmd))
	}
	return out
}

// Shard names the Redis Cluster master that holds conv's keys, as the
// client knows the cluster now, so that a writer can keep the
// conversations of a failing master from holding up the others. It is ""
// on a single Redis, and when the client does not know.
func (s *Store) Shard(ctx context.Context, conv string) string {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	node, err := cc.MasterForKey(ctx, keysFor(conv).meta)
	if err != nil {
		return ""
	}
	return node.Options().Addr
}

// appendArgs builds the keys and arguments of appendScript.
func (s *Store) appendArgs(c AppendCall) ([]string, []any) {
	got := ""
	if !c.Got.IsZero() {
		got = strconv.FormatInt(c.Got.UnixMilli(), 10)
	}
	return s.convArgs(c.Conv, nil, appendArgv{
		Gen: c.Gen, Text: c.Text, MaxBytes: s.cfg.MaxAnswerBytes,
		LeaseMs: s.cfg.LeaseTTL.Milliseconds(), GotMs: got, Offset: c.Offset,
	})
}

// parseAppend reads appendScript's reply.
func parseAppend(cmd *redis.Cmd) AppendReply {
	reply, err := cmd.StringSlice()
	if err != nil {
		return AppendReply{Err: fmt.Errorf("append to answer: %w", err)}
	}
	if len(reply) == 0 {
		return AppendReply{Err: errors.New("append to answer: empty reply")}
	}
	switch reply[0] {
	case "ok":
		r := AppendReply{Result: Appended}
		if len(reply) > 1 {
			r.ID = reply[1]
		}
		if len(reply) > 2 {
			r.Length, _ = strconv.Atoi(reply[2])
		}
		return r
	case "stop":
		return AppendReply{Result: StopRequested}
	case "full":
		return AppendReply{Result: Full}
	case "stale":
		return AppendReply{Err: ErrStale}
	}
	return AppendReply{Err: fmt.Errorf("append to answer: unexpected reply %q", reply[0])}
}
