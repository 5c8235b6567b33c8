package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"
)

// config is every setting of the process. Each comes from a flag, whose
// default is taken from an environment variable when that is set, so a
// container is configured by env and a developer by flags; -h lists them all.
type config struct {
	Addr          string
	RedisURL      string
	OpenAIKey     string
	OpenAIBaseURL string
	Model         string
	SystemPrompt  string
	DemoTPS       float64
	DemoTokens    int

	// Redis Cluster (rediscluster.go): either names a cluster.
	RedisCluster      bool
	RedisClusterAddrs string

	MaxMessageBytes int
	MaxBodyBytes    int
	MaxAnswerBytes  int
	MaxViewers      int
	AddrViewers     int
	MaxGenerations  int
	MaxMessages     int
	RedisPoolSize   int
	OwnerGens       int
	PostsPerMinute  int
	AddrPosts       int
	AddrGens        int
	ConvsPerHour    int
	AddrConvs       int
	DailyTokens     int
	ActionsPerMin   int
	StoredBytes     int
	TrustedProxy    string
	Access          string // PARLEY_ACCESS: open, code or header (access.go)
	AccessCode      string
	AccessHeader    string
	ShareLinks      string
	SessionKey      string
	SessionKeys     string
	SessionMaxAge   time.Duration
	MetricsAddr     string
	PprofAddr       string
	ViewerQueue     int
	RoomWrites      int
	LogMaxLen       int

	SSEGzip bool

	FlushInterval     time.Duration
	FrameBudget       float64
	FrameMaxHold      time.Duration
	LeaseTTL          time.Duration
	SweepInterval     time.Duration
	ConversationTTL   time.Duration
	Heartbeat         time.Duration
	ShutdownTimeout   time.Duration
	MaxAnswerDuration time.Duration
	ModelIdleTimeout  time.Duration
	RedisTimeout      time.Duration
	RequestTimeout    time.Duration

	LogLevel  string
	LogFormat string
}

// parseConfig reads flags from args and defaults from getenv.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var envErrs []error

	str := func(p *string, name, env, def, usage string) {
		if v := getenv(env); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+env+")")
	}
	integer := func(p *int, name, env string, def int, usage string) {
		if v := getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: not a whole number", env, v))
			}
			def = n
		}
		fs.IntVar(p, name, def, usage+" (env "+env+")")
	}
	boolean := func(p *bool, name, env string, def bool, usage string) {
		if v := getenv(env); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: use 1 or 0", env, v))
			}
			def = b
		}
		fs.BoolVar(p, name, def, usage+" (env "+env+")")
	}
	float := func(p *float64, name, env string, def float64, usage string) {
		if v := getenv(env); v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: not a number", env, v))
			}
			def = n
		}
		fs.Float64Var(p, name, def, usage+" (env "+env+")")
	}
	duration := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: not a duration like 10s or 500ms", env, v))
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" (env "+env+")")
	}

	str(&c.Addr, "addr", "PARLEY_ADDR", "localhost:8080", "address to listen on")
	str(&c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL (redis:// or rediss://); empty starts an embedded in-memory Redis; with addr= parameters (redis://host:port?addr=host2:port2) it names a Redis Cluster")
	str(&c.RedisClusterAddrs, "redis-cluster-addrs", "REDIS_CLUSTER_ADDRS", "", "Redis Cluster seed nodes, host:port,host:port (credentials and TLS then come from REDIS_URL, if set)")
	boolean(&c.RedisCluster, "redis-cluster", "REDIS_CLUSTER", false, "REDIS_URL names one node of a Redis Cluster")
	c.OpenAIKey = getenv("OPENAI_API_KEY") // a secret: env only, never a flag or a log line
	str(&c.OpenAIBaseURL, "openai-base-url", "OPENAI_BASE_URL", "", "OpenAI-compatible API base URL (OpenAI, Ollama, vLLM, llama.cpp); with OPENAI_API_KEY or this set, answers come from that model")
	str(&c.Model, "model", "PARLEY_MODEL", "", "model name for the OpenAI-compatible API (default gpt-4o-mini); 'demo' forces the offline demo model; 'clock' is the load-test model whose tokens carry their emission time (paced by the demo settings)")
	str(&c.SystemPrompt, "system-prompt", "PARLEY_SYSTEM_PROMPT", "", "system prompt sent before every conversation")
	float(&c.DemoTPS, "demo-tokens-per-second", "PARLEY_DEMO_TPS", 30, "speed of the offline demo model")
	integer(&c.DemoTokens, "demo-tokens", "PARLEY_DEMO_TOKENS", 150, "approximate answer length of the demo model, in tokens")

	integer(&c.MaxMessageBytes, "max-message-bytes", "PARLEY_MAX_MESSAGE_BYTES", 32<<10, "largest user message")
	integer(&c.MaxBodyBytes, "max-body-bytes", "PARLEY_MAX_BODY_BYTES", 64<<10, "largest request body")
	integer(&c.MaxAnswerBytes, "max-answer-bytes", "PARLEY_MAX_ANSWER_BYTES", 256<<10, "largest answer; longer ones are cut off and marked failed")
	integer(&c.MaxViewers, "max-viewers", "PARLEY_MAX_VIEWERS", 10000, "live streams per process")
	integer(&c.AddrViewers, "max-viewers-per-address", "PARLEY_MAX_VIEWERS_PER_ADDRESS", 200, "live streams one client address may have open per process (behind N processes, N times that; 0: no limit)")
	integer(&c.MaxGenerations, "max-generations", "PARLEY_MAX_GENERATIONS", 64, "answers written at once per process")
	integer(&c.OwnerGens, "max-generations-per-browser", "PARLEY_MAX_GENERATIONS_PER_BROWSER", 3, "answers one browser may have written at once, across processes (0: no limit)")
	integer(&c.PostsPerMinute, "posts-per-minute", "PARLEY_POSTS_PER_MINUTE", 20, "messages and regenerations one browser may send per minute, across processes (0: no limit)")
	integer(&c.AddrPosts, "posts-per-minute-per-address", "PARLEY_POSTS_PER_MINUTE_PER_ADDRESS", 60, "messages and regenerations one client address may send per minute, whatever its cookies (0: no limit)")
	integer(&c.AddrGens, "max-generations-per-address", "PARLEY_MAX_GENERATIONS_PER_ADDRESS", 6, "answers one client address may have written at once (0: no limit)")
	integer(&c.ConvsPerHour, "conversations-per-hour", "PARLEY_CONVERSATIONS_PER_HOUR", 30, "conversations one browser may start per hour (0: no limit)")
	integer(&c.AddrConvs, "conversations-per-hour-per-address", "PARLEY_CONVERSATIONS_PER_HOUR_PER_ADDRESS", 60, "conversations one client address may start per hour (0: no limit)")
	integer(&c.StoredBytes, "max-stored-bytes-per-browser", "PARLEY_MAX_STORED_BYTES_PER_BROWSER", 100<<20, "text one browser's conversations may hold (messages and answers; deleting a conversation frees its share); 409 past it (0: no limit)")
	integer(&c.ActionsPerMin, "actions-per-minute", "PARLEY_ACTIONS_PER_MINUTE", 60, "stops and renames one browser may send per minute (three times that per client address; 0: no limit)")
	integer(&c.DailyTokens, "daily-tokens", "PARLEY_DAILY_TOKENS", 2_000_000, "model tokens (prompt and answer, about 4 bytes each) the whole deployment may use per UTC day; new answers are refused past it (0: no budget)")
	str(&c.TrustedProxy, "trusted-proxy", "PARLEY_TRUSTED_PROXY", "", "which proxy in front names the client address that limits count: empty (none: the socket's address), \"fly\" (Fly-Client-IP), or the proxies' addresses/CIDRs whose X-Forwarded-For entries are believed")
	str(&c.Access, "access", "PARLEY_ACCESS", "open", "who may use this Parley: open (anyone who reaches it), code (a passphrase, PARLEY_ACCESS_CODE, asked once per browser) or header (an identity proxy in front names the user in PARLEY_ACCESS_HEADER, and must strip that header from clients' requests)")
	c.AccessCode = getenv("PARLEY_ACCESS_CODE") // a secret: env only
	str(&c.AccessHeader, "access-header", "PARLEY_ACCESS_HEADER", "X-Forwarded-User", "header mode: the header in which the identity proxy names the user (oauth2-proxy: X-Forwarded-Email or X-Auth-Request-Email)")
	str(&c.ShareLinks, "share-links", "PARLEY_SHARE_LINKS", "on", "on: anyone with a conversation's link may read it, whatever PARLEY_ACCESS; off: reading needs access too")
	c.SessionKey = getenv("PARLEY_SESSION_KEY")   // a secret: env only
	c.SessionKeys = getenv("PARLEY_SESSION_KEYS") // secrets: env only
	duration(&c.SessionMaxAge, "session-max-age", "PARLEY_SESSION_MAX_AGE", 365*24*time.Hour, "a browser's session ends when it has not been seen for this long (its conversations stay readable by link)")
	integer(&c.RedisPoolSize, "redis-pool-size", "PARLEY_REDIS_POOL_SIZE", 0, "Redis connections per process (per node on a cluster) besides subscriptions; 0 is go-redis's default, 10 per CPU")
	integer(&c.MaxMessages, "max-messages", "PARLEY_MAX_MESSAGES", 1000, "messages one conversation may hold (each exchange is two); 409 past it (0: no limit)")
	integer(&c.ViewerQueue, "viewer-queue", "PARLEY_VIEWER_QUEUE", 64, "frames queued per viewer before a slow one is fast-forwarded")
	integer(&c.RoomWrites, "room-writes-per-second", "PARLEY_ROOM_WRITES_PER_SECOND", 50000, "a room with many viewers gets fewer, bigger frames, so that writing them takes about this many writes a second (5,000 viewers: a frame per 100 ms, at most 250 ms); 0 sends every batch")
	integer(&c.LogMaxLen, "log-max-len", "PARLEY_LOG_MAX_LEN", 10000, "approximate events kept per conversation log (older cursors get a full refresh)")

	boolean(&c.SSEGzip, "sse-gzip", "PARLEY_SSE_GZIP", true, "gzip live streams for clients that accept it (each frame is compressed once per room, against the frames before it)")
	duration(&c.FlushInterval, "flush-interval", "PARLEY_FLUSH_INTERVAL", 25*time.Millisecond, "tokens are batched this long per Redis round trip")
	float(&c.FrameBudget, "frame-budget", "PARLEY_FRAME_BUDGET", 0, "bytes sent per viewer for an answer, as a multiple of the answer's size before compression, that long growing blocks are paced to; 0 (the default) writes a frame every flush interval, which gzip makes cheap (set 2 when most clients cannot take gzip)")
	duration(&c.FrameMaxHold, "frame-max-hold", "PARLEY_FRAME_MAX_HOLD", 300*time.Millisecond, "longest that text may wait for the frame budget")
	duration(&c.LeaseTTL, "lease-ttl", "PARLEY_LEASE_TTL", 10*time.Second, "a generation that stops renewing for this long is ended as interrupted")
	duration(&c.SweepInterval, "sweep-interval", "PARLEY_SWEEP_INTERVAL", 2*time.Second, "how often to look for generations whose process died")
	duration(&c.ConversationTTL, "conversation-ttl", "PARLEY_CONVERSATION_TTL", 30*24*time.Hour, "idle conversations expire after this; 0 keeps them")
	duration(&c.Heartbeat, "heartbeat", "PARLEY_HEARTBEAT", 15*time.Second, "keepalive comment interval on quiet streams (proxies cut idle connections at ~60s)")
	duration(&c.ShutdownTimeout, "shutdown-timeout", "PARLEY_SHUTDOWN_TIMEOUT", 25*time.Second, "graceful shutdown bound; keep it below the platform's kill timeout")
	duration(&c.MaxAnswerDuration, "max-answer-duration", "PARLEY_MAX_ANSWER_DURATION", 10*time.Minute, "answers are cut off after this long")
	duration(&c.ModelIdleTimeout, "model-idle-timeout", "PARLEY_MODEL_IDLE_TIMEOUT", 60*time.Second, "an answer fails when the model sends nothing for this long")
	duration(&c.RedisTimeout, "redis-timeout", "PARLEY_REDIS_TIMEOUT", 3*time.Second, "a Redis command (or connecting) that takes longer fails, so a slow Redis gives errors, not a pile-up of waiting requests")
	duration(&c.RequestTimeout, "request-timeout", "PARLEY_REQUEST_TIMEOUT", 5*time.Second, "bound on the Redis work of one page load or action; past it the request fails with 503")

	str(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "127.0.0.1:9091", "address of the Prometheus /metrics listener, kept apart from the public one and on loopback unless set (the container sets :9091 for Fly's scraper); empty or \"off\" disables it (an empty env var reads as unset, so use METRICS_ADDR=off)")
	str(&c.PprofAddr, "pprof-addr", "PARLEY_PPROF_ADDR", "", "address of a net/http/pprof listener for profiling; empty (the default) disables it; never expose it")
	str(&c.LogLevel, "log-level", "PARLEY_LOG_LEVEL", "info", "debug, info, warn or error")
	str(&c.LogFormat, "log-format", "PARLEY_LOG_FORMAT", "text", "text or json")

	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := errors.Join(envErrs...); err != nil {
		return c, err
	}
	if c.MetricsAddr == "off" {
		c.MetricsAddr = ""
	}
	return c, c.validate()
}

func (c config) validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	positive("max-message-bytes", c.MaxMessageBytes)
	positive("max-body-bytes", c.MaxBodyBytes)
	positive("max-answer-bytes", c.MaxAnswerBytes)
	positive("max-viewers", c.MaxViewers)
	positive("max-generations", c.MaxGenerations)
	positive("viewer-queue", c.ViewerQueue)
	positive("log-max-len", c.LogMaxLen)
	if c.MaxBodyBytes < c.MaxMessageBytes {
		errs = append(errs, fmt.Errorf("max-body-bytes (%d) must be at least max-message-bytes (%d)", c.MaxBodyBytes, c.MaxMessageBytes))
	}
	for name, d := range map[string]time.Duration{
		"flush-interval": c.FlushInterval, "lease-ttl": c.LeaseTTL, "sweep-interval": c.SweepInterval,
		"heartbeat": c.Heartbeat, "shutdown-timeout": c.ShutdownTimeout, "model-idle-timeout": c.ModelIdleTimeout,
		"redis-timeout": c.RedisTimeout, "request-timeout": c.RequestTimeout, "session-max-age": c.SessionMaxAge,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.LeaseTTL < 3*c.FlushInterval {
		errs = append(errs, fmt.Errorf("lease-ttl (%s) must be much longer than flush-interval (%s)", c.LeaseTTL, c.FlushInterval))
	}
	if c.FrameBudget < 0 || c.FrameMaxHold < 0 {
		errs = append(errs, fmt.Errorf("frame-budget (%g) and frame-max-hold (%s) must not be negative", c.FrameBudget, c.FrameMaxHold))
	}
	if c.RoomWrites < 0 {
		errs = append(errs, fmt.Errorf("room-writes-per-second must not be negative, got %d (0 turns the spacing off)", c.RoomWrites))
	}
	if c.DemoTPS <= 0 {
		errs = append(errs, fmt.Errorf("demo-tokens-per-second must be positive, got %g", c.DemoTPS))
	}
	if err := c.validateAccess(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
