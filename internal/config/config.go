// Package config holds every setting of Parley: its definition (flag,
// environment variable, default, group, help), its parsing and its
// validation, and what follows from settings alone: the logger, the Redis
// client options and the profiler listener.
//
// Each setting is a flag whose default comes from an environment variable,
// so a container is configured by env and a developer by flags; secrets are
// environment variables only, never a flag or a log line:
//
//	cfg, err := config.Parse(os.Args[1:], os.Getenv, os.Stderr)
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of the process, as parsed and validated by Parse.
type Config struct {
	// Essentials.
	Addr              string
	AddrFromPort      bool // Addr is :PORT, from the PORT variable
	RedisURL          string
	RedisCluster      bool   // REDIS_URL names one node of a Redis Cluster
	RedisClusterAddrs string // cluster seed nodes, host:port,host:port
	OpenAIKey         string // secret
	OpenAIBaseURL     string
	Model             string
	Models            string // comma-separated: see ModelList
	SystemPrompt      string
	SessionKeys       string // secrets, comma-separated, newest first
	SessionKey        string // secret, read when SessionKeys is empty
	Access            string // open, code or header: see AccessMode
	AccessCode        string // secret
	AccessHeader      string
	ShareLinks        string // on or off: see SharesLinks

	// Limits.
	TrustedProxy      string
	PostsPerMinute    int
	AddrPosts         int
	ConvsPerHour      int
	AddrConvs         int
	ActionsPerMin     int
	DailyTokens       int
	OwnerGens         int
	AddrGens          int
	MaxGenerations    int
	MaxViewers        int
	AddrViewers       int
	MaxMessageBytes   int
	MaxBodyBytes      int
	MaxAnswerBytes    int
	MaxAnswerDuration time.Duration
	MaxMessages       int
	StoredBytes       int
	ConversationTTL   time.Duration
	SessionMaxAge     time.Duration

	// Tuning and debugging.
	ShutdownTimeout  time.Duration
	RequestTimeout   time.Duration
	RedisTimeout     time.Duration
	RedisPoolSize    int
	ModelIdleTimeout time.Duration
	Heartbeat        time.Duration
	ViewerQueue      int
	RoomWrites       int
	SSEGzip          bool
	FlushInterval    time.Duration
	FrameBudget      float64
	FrameMaxHold     time.Duration
	LeaseTTL         time.Duration
	SweepInterval    time.Duration
	LogMaxLen        int
	DemoTPS          float64
	DemoTokens       int
	MetricsAddr      string // empty when off
	PprofAddr        string // empty when off
	LogLevel         string
	LogFormat        string
}

// Group is where -h and the README list a setting: what an operator must
// decide first, then what bounds use, then what rarely needs a change.
type Group int

// The groups, in the order they are listed.
const (
	Essentials Group = iota
	Limits
	Tuning
)

// Title is the group's heading in -h.
func (g Group) Title() string {
	switch g {
	case Essentials:
		return "Essentials: where it listens, its Redis, its model, who may use it"
	case Limits:
		return "Limits: rates, budgets, sizes and viewers"
	}
	return "Tuning: timeouts, queues, intervals and debugging"
}

// Setting describes one setting.
type Setting struct {
	Flag    string // without the dash; empty for a secret, read from Env only
	Env     string
	Group   Group
	Default string // as -h shows it; empty when there is none
	Help    string // one line, wrapped by -h
}

// Settings lists every setting in -h's order.
func Settings() []Setting {
	var out []Setting
	for _, s := range settings(&Config{}) {
		out = append(out, s.Setting)
	}
	return out
}

// Parse reads the settings from args (flags) over getenv (defaults). -h and
// -help write the usage to stderr and return flag.ErrHelp.
func Parse(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	getenv, port := withPort(getenv)
	var c Config
	all := settings(&c)
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { writeUsage(fs.Output(), all) }
	var envErrs []error
	for _, s := range all {
		if err := s.bind(fs, getenv); err != nil {
			envErrs = append(envErrs, err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if c.MetricsAddr == "off" {
		c.MetricsAddr = ""
	}
	if port != "" && c.Addr == ":"+port {
		// Checked only when used: -addr makes PORT irrelevant.
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return c, fmt.Errorf("PORT=%q is not a port number (1-65535)", port)
		}
		c.AddrFromPort = true
	}
	return c, c.validate()
}

// DefaultMetricsAddr is where metrics are served unless set otherwise.
const DefaultMetricsAddr = "127.0.0.1:9091"

// withPort reads PORT, which hosting platforms (Cloud Run, Render, Heroku,
// Railway) set to the port they route to, as PARLEY_ADDR=:PORT when
// PARLEY_ADDR itself is not set. It returns the port it put there, if any.
func withPort(getenv func(string) string) (func(string) string, string) {
	port := getenv("PORT")
	if port == "" || getenv("PARLEY_ADDR") != "" {
		return getenv, ""
	}
	return func(k string) string {
		if k == "PARLEY_ADDR" {
			return ":" + port
		}
		return getenv(k)
	}, port
}

// setting is a Setting bound to its field: bind sets the field from the
// environment (or the default) and registers its flag.
type setting struct {
	Setting
	kind string // the flag's value, as the flag package names it
	bind func(fs *flag.FlagSet, getenv func(string) string) error
}

type kind interface {
	string | int | bool | float64 | time.Duration
}

// def defines a setting that is a flag, named name, whose default is env's
// value when that is set, else d.
func def[T kind](p *T, name, env string, g Group, d T, help string) setting {
	return setting{
		Setting: Setting{Flag: name, Env: env, Group: g, Default: format(d), Help: help},
		kind:    kindName[T](),
		bind: func(fs *flag.FlagSet, getenv func(string) string) error {
			v, err := d, error(nil)
			if s := getenv(env); s != "" {
				v, err = parse[T](env, s)
			}
			register(fs, p, name, v, help)
			return err
		},
	}
}

// secret defines a setting read from env only: a secret must never be on a
// command line (visible to every user of the machine) or in a log line.
func secret(p *string, env string, g Group, help string) setting {
	return setting{
		Setting: Setting{Env: env, Group: g, Help: help},
		bind: func(_ *flag.FlagSet, getenv func(string) string) error {
			*p = getenv(env)
			return nil
		},
	}
}

// parse reads env's value s as a T.
func parse[T kind](env, s string) (T, error) {
	var v T
	var err error
	switch p := any(&v).(type) {
	case *string:
		*p = s
	case *int:
		if *p, err = strconv.Atoi(s); err != nil {
			err = fmt.Errorf("%s=%q: not a whole number", env, s)
		}
	case *bool:
		if *p, err = strconv.ParseBool(s); err != nil {
			err = fmt.Errorf("%s=%q: use 1 or 0", env, s)
		}
	case *float64:
		if *p, err = strconv.ParseFloat(s, 64); err != nil {
			err = fmt.Errorf("%s=%q: not a number", env, s)
		}
	case *time.Duration:
		if *p, err = time.ParseDuration(s); err != nil {
			err = fmt.Errorf("%s=%q: not a duration like 10s or 500ms", env, s)
		}
	}
	return v, err
}

// register adds the flag name, defaulting to v, with the flag package's own
// parsing of each type.
func register[T kind](fs *flag.FlagSet, p *T, name string, v T, help string) {
	switch p := any(p).(type) {
	case *string:
		fs.StringVar(p, name, any(v).(string), help)
	case *int:
		fs.IntVar(p, name, any(v).(int), help)
	case *bool:
		fs.BoolVar(p, name, any(v).(bool), help)
	case *float64:
		fs.Float64Var(p, name, any(v).(float64), help)
	case *time.Duration:
		fs.DurationVar(p, name, any(v).(time.Duration), help)
	}
}

// kindName is T as the flag package's usage names it.
func kindName[T kind]() string {
	var v T
	switch any(v).(type) {
	case int:
		return "int"
	case bool:
		return "bool"
	case float64:
		return "float"
	case time.Duration:
		return "duration"
	}
	return "string"
}

// format is how -h shows a default: "" for an empty string, and durations
// without their zero tails (8760h, not 8760h0m0s).
func format[T kind](v T) string {
	switch v := any(v).(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Duration:
		s := v.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
	return fmt.Sprint(v)
}

// Logger is the process's logger, writing to w in the configured level and
// format (both validated by Parse).
func (c Config) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
