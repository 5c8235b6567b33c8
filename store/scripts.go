package store

import (
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts live in lua/, one file each. Every file begins with a
// comment naming its KEYS and ARGV by meaning, and reads its own ARGV on one
// line, `local a, b, c = unpack(ARGV, 5)`, whose names are the `lua` tags of
// its argv struct below in the same order (scripts_test.go checks both), so
// that no caller ever counts positions.
//
// Every script that writes a conversation starts with lua/prelude.lua, which
// takes the same first keys and arguments (see convArgs) and defines how to
// append to the log, publish the notice and refresh expiry, the same way
// everywhere. All keys of one conversation share the hash tag {c:ID}, so each
// script runs on one Redis Cluster slot, and so does its notice when it is
// sharded.
//
// The text of an answer being written lives in its own string key,
// {c:ID}:t:N, grown with APPEND: a batch then costs O(batch), where keeping
// it in the msgs hash would copy the whole answer on every batch. When the
// answer ends, finish moves the text into the hash and deletes the key. Its
// name is built by textkey (lua/textkey.lua) from the meta key rather than
// passed in KEYS; it shares the hash tag, so it is in the same cluster slot.

//go:embed lua/*.lua
var luaFiles embed.FS

// lua returns the source of lua/name.lua.
func lua(name string) string {
	b, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic("store: missing script " + name + ": " + err.Error())
	}
	return string(b)
}

var (
	textkeyLua = lua("textkey")
	preludeLua = textkeyLua + lua("prelude")

	postScript   = redis.NewScript(preludeLua + lua("post"))
	appendScript = redis.NewScript(preludeLua + lua("append"))
	finishScript = redis.NewScript(preludeLua + lua("finish"))
	// renewScript: a lease that ran out is taken again as long as the answer
	// is still gen's (meta.active): its process is alive (it renews), Redis
	// was only unreachable for longer than the lease (a pause, a restart),
	// and nobody ended the answer meanwhile. Ending it (expire, a post or a
	// stop over a dead lease) clears meta.active in one script, so an answer
	// is either re-taken or ended, never both. Sweepers hold back after such
	// an outage (sweepScript) so that the living generation gets there first.
	renewScript    = redis.NewScript(preludeLua + lua("renew"))
	stopScript     = redis.NewScript(preludeLua + lua("stop"))
	expireScript   = redis.NewScript(preludeLua + lua("expire"))
	titleScript    = redis.NewScript(preludeLua + lua("title"))
	regenScript    = redis.NewScript(preludeLua + lua("regen"))
	editScript     = redis.NewScript(preludeLua + lua("edit"))
	switchScript   = redis.NewScript(preludeLua + lua("switch"))
	continueScript = redis.NewScript(preludeLua + lua("continue"))
	noteScript     = redis.NewScript(preludeLua + lua("note"))
	settingsScript = redis.NewScript(preludeLua + lua("settings"))
	deleteScript   = redis.NewScript(preludeLua + lua("delete"))

	pathLua        = lua("path")
	snapshotScript = redis.NewScript(textkeyLua + pathLua + lua("snapshot"))
	pageScript     = redis.NewScript(textkeyLua + pathLua + lua("page"))
	exportScript   = redis.NewScript(textkeyLua + lua("export"))
	messageScript  = redis.NewScript(textkeyLua + pathLua + lua("message"))
	// sweepScript: every process sweeps every PARLEY_SWEEP_INTERVAL, so the
	// swept key only runs out when no process could reach Redis for longer
	// than the gap: Redis was paused, stalled or restarting, or every process
	// was down. Leases ran out meanwhile although their generations may be
	// alive, so sweeps then find nothing for the hold (a lease), which gives
	// each living generation the time to re-take its lease (renewScript)
	// before any sweeper ends its answer. Both keys expire on Redis's own
	// clock, not the processes': the gap is seen by every process, whatever
	// their clocks say, and however long the outage lasted.
	sweepScript      = redis.NewScript(lua("sweep"))
	presenceScript   = redis.NewScript(lua("presence"))
	rateScript       = redis.NewScript(lua("rate"))
	refundScript     = redis.NewScript(lua("refund"))
	freeScript       = redis.NewScript(lua("free"))
	lastAnswerScript = redis.NewScript(pathLua + lua("lastanswer"))
)

// argv is the arguments of one script, in the order its Lua file reads them.
type argv interface{ list() []any }

// convArgs builds the KEYS and ARGV of a script that starts with the
// prelude: conv's keys then extra, the prelude's arguments then own's.
func (s *Store) convArgs(conv string, extra []string, own argv) ([]string, []any) {
	k := keysFor(conv)
	ks := append([]string{k.meta, k.msgs, k.log, k.lease}, extra...)
	args := []any{s.pubCmd(), Channel(conv), s.cfg.LogMaxLen, s.cfg.ConversationTTL.Milliseconds()}
	if own != nil {
		args = append(args, own.list()...)
	}
	return ks, args
}

// pubCmd is the command a script publishes its notice with: SPUBLISH on a
// Redis Cluster, so that the notice stays on the conversation's shard.
func (s *Store) pubCmd() string {
	if s.cfg.Sharded {
		return "SPUBLISH"
	}
	return "PUBLISH"
}

// runConv runs a prelude script on conv (see convArgs).
func (s *Store) runConv(ctx context.Context, script *redis.Script, conv string, extra []string, own argv) *redis.Cmd {
	ks, args := s.convArgs(conv, extra, own)
	return script.Run(ctx, s.rdb, ks, args...)
}

// evalBatch runs script n times in one pipeline (EVALSHA), the i-th with
// args(i), and returns their commands, each with its own reply or error.
// also, when not nil, adds more commands to the pipeline. The runs Redis
// refused because it does not have the script (a restart, SCRIPT FLUSH, a
// promoted replica) are sent again, once, after loading it; also's are not.
func (s *Store) evalBatch(ctx context.Context, script *redis.Script, n int, args func(i int) ([]string, []any), also func(redis.Pipeliner)) []*redis.Cmd {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	cmds := s.pipeScript(ctx, script, all, args, also)
	var again []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds
	}
	if err := script.Load(ctx, s.rdb).Err(); err != nil {
		for _, i := range again {
			cmds[i].SetErr(fmt.Errorf("load the script: %w", err))
		}
		return cmds
	}
	for j, cmd := range s.pipeScript(ctx, script, again, args, nil) {
		cmds[again[j]] = cmd
	}
	return cmds
}

// pipeScript sends the runs of script at indexes which (see evalBatch) in
// one pipeline and returns their commands.
func (s *Store) pipeScript(ctx context.Context, script *redis.Script, which []int, args func(i int) ([]string, []any), also func(redis.Pipeliner)) []*redis.Cmd {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(which))
	sha := script.Hash()
	for j, i := range which {
		ks, a := args(i)
		cmds[j] = pipe.EvalSha(ctx, sha, ks, a...)
	}
	if also != nil {
		also(pipe)
	}
	// Each command carries its own error; Exec's is the first of them.
	_, _ = pipe.Exec(ctx)
	return cmds
}

// isNoScript reports whether err is Redis saying it does not have a script.
func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, redis.ErrNoScript) || redis.HasErrorPrefix(err, "NOSCRIPT"))
}

// postArgv is lua/post.lua's own ARGV.
type postArgv struct {
	Create      bool   `lua:"create"`
	Text        string `lua:"text"`
	Gen         string `lua:"gen"`
	LeaseMs     int64  `lua:"lease_ms"`
	IdemTTLMs   int64  `lua:"idem_ttl_ms"`
	NowMs       int64  `lua:"now_ms"`
	Interrupted string `lua:"interrupted"`
	Owner       string `lua:"owner"`
	Key         string `lua:"key"`
	MaxMessages int    `lua:"max_messages"`
	Model       string `lua:"model"`
	Choice      string `lua:"choice"`
}

func (a postArgv) list() []any {
	return []any{a.Create, a.Text, a.Gen, a.LeaseMs, a.IdemTTLMs, a.NowMs, a.Interrupted, a.Owner, a.Key, a.MaxMessages, a.Model, a.Choice}
}

// appendArgv is lua/append.lua's own ARGV.
type appendArgv struct {
	Gen      string `lua:"gen"`
	Text     string `lua:"text"`
	MaxBytes int    `lua:"max_bytes"`
	LeaseMs  int64  `lua:"lease_ms"`
	GotMs    string `lua:"got_ms"`
	Offset   int    `lua:"offset"`
}

func (a appendArgv) list() []any {
	return []any{a.Gen, a.Text, a.MaxBytes, a.LeaseMs, a.GotMs, a.Offset}
}

// finishArgv is lua/finish.lua's own ARGV.
type finishArgv struct {
	Gen    string `lua:"gen"`
	Status string `lua:"status"`
	Err    string `lua:"err"`
	Cut    bool   `lua:"cut"`
}

func (a finishArgv) list() []any { return []any{a.Gen, a.Status, a.Err, a.Cut} }

// renewArgv is lua/renew.lua's own ARGV.
type renewArgv struct {
	Gen     string `lua:"gen"`
	LeaseMs int64  `lua:"lease_ms"`
}

func (a renewArgv) list() []any { return []any{a.Gen, a.LeaseMs} }

// expireArgv is lua/expire.lua's own ARGV.
type expireArgv struct {
	Interrupted string `lua:"interrupted"`
}

func (a expireArgv) list() []any { return []any{a.Interrupted} }

// titleArgv is lua/title.lua's own ARGV.
type titleArgv struct {
	Title       string `lua:"title"`
	IfEmpty     bool   `lua:"if_empty"`
	WantOwner   string `lua:"want_owner"`
	Provisional bool   `lua:"provisional"`
}

func (a titleArgv) list() []any { return []any{a.Title, a.IfEmpty, a.WantOwner, a.Provisional} }

// regenArgv is lua/regen.lua's own ARGV.
type regenArgv struct {
	Owner       string `lua:"owner"`
	Gen         string `lua:"gen"`
	Rev         string `lua:"rev"`
	LeaseMs     int64  `lua:"lease_ms"`
	Interrupted string `lua:"interrupted"`
	Pos         int    `lua:"pos"`
	Model       string `lua:"model"`
	NowMs       int64  `lua:"now_ms"`
	MaxNodes    int    `lua:"max_nodes"`
}

func (a regenArgv) list() []any {
	return []any{a.Owner, a.Gen, a.Rev, a.LeaseMs, a.Interrupted, a.Pos, a.Model, a.NowMs, a.MaxNodes}
}

// editArgv is lua/edit.lua's own ARGV.
type editArgv struct {
	Owner       string `lua:"owner"`
	Pos         int    `lua:"pos"`
	Text        string `lua:"text"`
	Gen         string `lua:"gen"`
	Key         string `lua:"key"`
	LeaseMs     int64  `lua:"lease_ms"`
	IdemTTLMs   int64  `lua:"idem_ttl_ms"`
	NowMs       int64  `lua:"now_ms"`
	Interrupted string `lua:"interrupted"`
	Model       string `lua:"model"`
	MaxMessages int    `lua:"max_messages"`
	Rev         string `lua:"rev"`
}

func (a editArgv) list() []any {
	return []any{a.Owner, a.Pos, a.Text, a.Gen, a.Key, a.LeaseMs, a.IdemTTLMs, a.NowMs, a.Interrupted, a.Model, a.MaxMessages, a.Rev}
}

// switchArgv is lua/switch.lua's own ARGV.
type switchArgv struct {
	Owner       string `lua:"owner"`
	Pos         int    `lua:"pos"`
	Version     int    `lua:"version"`
	Interrupted string `lua:"interrupted"`
	Rev         string `lua:"rev"`
}

func (a switchArgv) list() []any { return []any{a.Owner, a.Pos, a.Version, a.Interrupted, a.Rev} }

// continueArgv is lua/continue.lua's own ARGV.
type continueArgv struct {
	Owner       string `lua:"owner"`
	Gen         string `lua:"gen"`
	Rev         string `lua:"rev"`
	LeaseMs     int64  `lua:"lease_ms"`
	Interrupted string `lua:"interrupted"`
	NowMs       int64  `lua:"now_ms"`
}

func (a continueArgv) list() []any {
	return []any{a.Owner, a.Gen, a.Rev, a.LeaseMs, a.Interrupted, a.NowMs}
}

// noteArgv is lua/note.lua's own ARGV.
type noteArgv struct {
	Gen  string `lua:"gen"`
	Text string `lua:"text"`
}

func (a noteArgv) list() []any { return []any{a.Gen, a.Text} }

// settingsArgv is lua/settings.lua's own ARGV.
type settingsArgv struct {
	Owner    string `lua:"owner"`
	SetModel bool   `lua:"set_model"`
	Model    string `lua:"model"`
	SetSys   bool   `lua:"set_sys"`
	Sys      string `lua:"sys"`
	ResetSys bool   `lua:"reset_sys"`
}

func (a settingsArgv) list() []any {
	return []any{a.Owner, a.SetModel, a.Model, a.SetSys, a.Sys, a.ResetSys}
}

// deleteArgv is lua/delete.lua's own ARGV.
type deleteArgv struct {
	Owner  string `lua:"owner"`
	NowMs  int64  `lua:"now_ms"`
	GoneMs int64  `lua:"gone_ms"`
}

func (a deleteArgv) list() []any { return []any{a.Owner, a.NowMs, a.GoneMs} }

// sweepArgv is lua/sweep.lua's ARGV.
type sweepArgv struct {
	NowMs  int64 `lua:"now_ms"`
	Limit  int64 `lua:"limit"`
	GapMs  int64 `lua:"gap_ms"`
	HoldMs int64 `lua:"hold_ms"`
}

func (a sweepArgv) list() []any { return []any{a.NowMs, a.Limit, a.GapMs, a.HoldMs} }

// presenceArgv is lua/presence.lua's ARGV.
type presenceArgv struct {
	PubCmd  string `lua:"pubcmd"`
	Channel string `lua:"channel"`
	Proc    string `lua:"proc"`
	N       int    `lua:"n"`
	TTLMs   int64  `lua:"ttl"`
}

func (a presenceArgv) list() []any { return []any{a.PubCmd, a.Channel, a.Proc, a.N, a.TTLMs} }

// pageArgv is lua/page.lua's ARGV.
type pageArgv struct {
	NHeld    int    `lua:"nheld"`
	HeldRevs string `lua:"heldrevs"`
}

func (a pageArgv) list() []any { return []any{a.NHeld, a.HeldRevs} }

// freeArgv is lua/free.lua's ARGV.
type freeArgv struct {
	Bytes int64 `lua:"bytes"`
	TTLMs int64 `lua:"ttl_ms"`
}

func (a freeArgv) list() []any { return []any{a.Bytes, a.TTLMs} }
