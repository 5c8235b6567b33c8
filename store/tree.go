package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The changes that steer a conversation (model.go defines tree, version,
// path and branch): each adds to the tree or moves the path, never replaces
// a message, and logs one branch event from the first position it changed,
// so that a viewer's catch-up from any cursor is the path's suffix.

// Regen is a request to write an answer again as a new version,
// Store.Regenerate's argument.
type Regen struct {
	Conv, Owner string
	Gen         string // the generation that will write it
	// Index is the answer's position; 0 (never an answer's) is the last message.
	Index int
	// Rev is the answer's revision as the caller saw it (Message.Rev): a
	// repeated request for the same revision does nothing, so the button is
	// idempotent like the composer.
	Rev   string
	Model string // the deployment's default model (see Post.Model)
}

// Regenerate adds a new, streaming version of the answer at r.Index (the
// path then ends there) and takes the lease for generation r.Gen, which the
// caller must then run, in one step. started is false when the answer
// changed since r.Rev (a double click already regenerated it).
func (s *Store) Regenerate(ctx context.Context, r Regen) (started bool, err error) {
	// Tracked first, as in Post: a reply lost after the script ran must
	// still leave the answer to the sweeper.
	if err := s.track(ctx, r.Conv); err != nil {
		return false, err
	}
	res, err := s.runConv(ctx, regenScript, r.Conv, nil, regenArgv{
		Owner: r.Owner, Gen: r.Gen, Rev: r.Rev, Pos: r.Index, Model: r.Model,
		LeaseMs: s.cfg.LeaseTTL.Milliseconds(), Interrupted: interruptedText,
		NowMs: time.Now().UnixMilli(), MaxNodes: s.maxNodes(),
	}).StringSlice()
	if err != nil {
		return false, fmt.Errorf("regenerate: %w", err)
	}
	if res[0] == "dup" {
		return false, nil
	}
	if err := branchReply("regenerate", res[0]); err != nil {
		return false, err
	}
	return true, nil
}

// maxNodes bounds the messages a conversation's tree holds, versions
// included: four times the path's bound.
func (s *Store) maxNodes() int { return 4 * s.cfg.MaxMessages }

// branchReply maps a tree script's refusal to its error.
func branchReply(what, res string) error {
	switch res {
	case "ok":
		return nil
	case "notfound":
		return ErrNotFound
	case "forbidden":
		return ErrForbidden
	case "busy":
		return ErrBusy
	case "nothing":
		return ErrNoSuchMessage
	case "full":
		return ErrConversationFull
	}
	return fmt.Errorf("%s: unexpected reply %q", what, res)
}

// Edit is a new version of a sent user message, Store.Edit's argument.
type Edit struct {
	Conv, Owner string
	Index       int    // the user message's position
	Text        string // the new version
	Key         string // idempotency key, as Post's
	// Rev is the message's revision as the page showed it: a page that is
	// behind (its position now holds another message) changes nothing.
	Rev   string
	Gen   string // the generation that will write its answer
	Model string // the deployment's default model (see Post.Model)
}

// Edit stores e.Text as a new version of the user message at e.Index, with
// an empty answer after it, shows that branch (the old version and what
// followed it stay as the other branch), and takes the lease for e.Gen, in
// one step. A second call with e.Key changes nothing (Duplicate).
func (s *Store) Edit(ctx context.Context, e Edit) (PostResult, error) {
	if err := s.track(ctx, e.Conv); err != nil {
		return PostResult{}, err
	}
	res, err := s.runConv(ctx, editScript, e.Conv, []string{keysFor(e.Conv).idem()}, editArgv{
		Owner: e.Owner, Pos: e.Index, Text: e.Text, Gen: e.Gen, Key: e.Key, Model: e.Model, Rev: e.Rev,
		LeaseMs: s.cfg.LeaseTTL.Milliseconds(), IdemTTLMs: s.cfg.IdempotencyTTL.Milliseconds(),
		NowMs: time.Now().UnixMilli(), Interrupted: interruptedText, MaxMessages: s.cfg.MaxMessages,
	}).StringSlice()
	if err != nil {
		return PostResult{}, fmt.Errorf("edit message: %w", err)
	}
	switch res[0] {
	case "ok":
		n, _ := strconv.Atoi(res[1])
		return PostResult{UserIndex: n, Gen: e.Gen, EventID: res[2]}, nil
	case "dup":
		n, _ := strconv.Atoi(res[1])
		return PostResult{Duplicate: true, UserIndex: n}, nil
	}
	return PostResult{}, branchReply("edit message", res[0])
}

// Switch is a choice of version, Store.Switch's argument.
type Switch struct {
	Conv, Owner string
	Index       int // the message's position
	Version     int // 1-based, in order of creation
	// Rev, when not empty, is the revision of the message at Index as the
	// page showed it: a page that is behind (its position now holds
	// another message) changes nothing. Pages always send it.
	Rev string
}

// Switch shows version w.Version of the message at w.Index: the path then
// runs through it and each later message's last shown version. ErrBusy
// while an answer is being written; ErrNoSuchMessage for a version or
// position that does not exist, or a revision that is not the message's.
// Choosing the version shown changes nothing.
func (s *Store) Switch(ctx context.Context, w Switch) error {
	res, err := s.runConv(ctx, switchScript, w.Conv, nil, switchArgv{
		Owner: w.Owner, Pos: w.Index, Version: w.Version, Interrupted: interruptedText, Rev: w.Rev,
	}).StringSlice()
	if err != nil {
		return fmt.Errorf("switch version: %w", err)
	}
	if res[0] == "same" {
		return nil
	}
	return branchReply("switch version", res[0])
}

// Continuation asks the model to go on with an answer it ended at its
// length limit, Store.Continue's argument.
type Continuation struct {
	Conv, Owner string
	Gen         string // the generation that will write the rest
	Rev         string // the answer's revision as the caller saw it
}

// Continue makes the last answer, which must be Cut, streaming again for
// c.Gen with its text kept, and takes the lease, in one step. It returns
// the answer's length: the generation appends after it. started is false
// when the answer changed since c.Rev.
func (s *Store) Continue(ctx context.Context, c Continuation) (length int, started bool, err error) {
	if err := s.track(ctx, c.Conv); err != nil {
		return 0, false, err
	}
	res, err := s.runConv(ctx, continueScript, c.Conv, nil, continueArgv{
		Owner: c.Owner, Gen: c.Gen, Rev: c.Rev, LeaseMs: s.cfg.LeaseTTL.Milliseconds(),
		Interrupted: interruptedText, NowMs: time.Now().UnixMilli(),
	}).StringSlice()
	if err != nil {
		return 0, false, fmt.Errorf("continue answer: %w", err)
	}
	if res[0] == "dup" {
		return 0, false, nil
	}
	if err := branchReply("continue answer", res[0]); err != nil {
		return 0, false, err
	}
	length, _ = strconv.Atoi(res[2])
	return length, true, nil
}

// Note shows text on the answer generation gen is writing, until it ends or
// the next note ("Retrying in 4 s"). ErrStale when gen no longer writes it.
func (s *Store) Note(ctx context.Context, conv, gen, text string) error {
	res, err := s.runConv(ctx, noteScript, conv, nil, noteArgv{Gen: gen, Text: text}).StringSlice()
	if err != nil {
		return fmt.Errorf("note on answer: %w", err)
	}
	if res[0] == "stale" {
		return ErrStale
	}
	return nil
}

// SettingsChange is what an owner changes of a conversation's settings,
// Store.SetSettings's argument; a nil field is left as it is.
type SettingsChange struct {
	Conv, Owner  string
	Model        *string
	Instructions *string
	// ResetInstructions goes back to the deployment's default instructions.
	ResetInstructions bool
}

// SetSettings changes a conversation's model or instructions and tells
// every viewer (a settings event).
func (s *Store) SetSettings(ctx context.Context, c SettingsChange) error {
	a := settingsArgv{Owner: c.Owner, ResetSys: c.ResetInstructions}
	if c.Model != nil {
		a.SetModel, a.Model = true, *c.Model
	}
	if c.Instructions != nil {
		a.SetSys, a.Sys = true, *c.Instructions
	}
	res, err := s.runConv(ctx, settingsScript, c.Conv, nil, a).StringSlice()
	if err != nil {
		return fmt.Errorf("change settings: %w", err)
	}
	return branchReply("change settings", res[0])
}
