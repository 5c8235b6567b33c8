// Package metrics exposes Parley's Prometheus metrics: what the live hub
// sends, the generations this process runs, Redis round trips and the
// latency from a token reaching the generation to its frame reaching a
// viewer.
//
// Nothing here is global: a Metrics has its own registry, and the packages
// it measures never import Prometheus. They take small observer interfaces
// (generation.Observer, live.Observer) that Metrics implements, or are read
// at scrape time (live.Hub's Stats). The handler belongs on a listener of its
// own, never on the public port.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/live"
)

// Path is where Handler serves the metrics.
const Path = "/metrics"

// Outcomes a generation ends with: the statuses generation writes on an
// answer that ended (store's Status names). Each has a series from the
// start, so a rate over them never starts from a missing series; any other
// outcome is counted as interrupted.
var outcomes = []string{"done", "stopped", "failed", outcomeInterrupted}

const outcomeInterrupted = "interrupted"

// redisCommands are the commands that get a series of their own in the Redis
// latency histogram: the ones Parley sends on its hot paths. Every other
// command is counted as "other" and every pipeline as "pipeline", so the
// label's values stay few whatever is sent.
var redisCommands = []string{"evalsha", "eval", "publish", "spublish", "zadd", "zrem", "zrangebyscore", "hmget", "ping"}

// Metrics holds Parley's metrics and the registry that serves them.
type Metrics struct {
	reg *prometheus.Registry

	gensRunning  prometheus.Gauge
	providerUp   prometheus.Gauge
	gensEnded    map[string]prometheus.Counter
	tokenToFrame prometheus.Histogram
	redisRTT     map[string]prometheus.Observer // read-only once built
	refusals     *prometheus.CounterVec
}

// RefusalReasons are the reasons requests are refused for, each with a
// series from the start (handlers names them; others are counted as
// "other").
var RefusalReasons = []string{
	"posts_browser", "posts_address", "conversations_browser", "conversations_address",
	"answers_browser", "answers_address", "actions_browser", "actions_address", "reads_browser", "reads_address", "stored_browser", "viewers_address", "tokens_deployment", "capacity",
	"too_large", "conversation_full", "forbidden", "busy", "not_found", "unavailable", "other",
}

// New returns Metrics with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		gensRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_generations_running",
			Help: "Answers this process is writing now.",
		}),
		providerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_model_provider_up",
			Help: "1 when the last call to the model provider succeeded or failed for a reason that is not the provider's (a bad request, a rate limit, a cut answer); 0 when it rejected our key, could not be reached, had a server error or stopped answering.",
		}),
		gensEnded: map[string]prometheus.Counter{},
		tokenToFrame: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_token_to_frame_seconds",
			Help: "Time from a generation getting text from the model to the frame holding it being written to a viewer, per viewer and frame. " +
				"Across processes it includes their clock difference.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		redisRTT: map[string]prometheus.Observer{},
	}
	ended := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_generations_ended_total",
		Help: "Answers this process wrote, by how they ended (interrupted includes those whose end another process wrote).",
	}, []string{"outcome"})
	for _, o := range outcomes {
		m.gensEnded[o] = ended.WithLabelValues(o)
	}
	rtt := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parley_redis_duration_seconds",
		Help:    "Redis round trips as the client sees them, by command (a few named ones, else other) or pipeline.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"command"})
	for _, c := range append(redisCommands, "pipeline", "other") {
		m.redisRTT[c] = rtt.WithLabelValues(c)
	}
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_refusals_total",
		Help: "Requests refused, by reason: a shared limit (what, and whose: browser, address or deployment), this process's capacity, a request too large, a full conversation, another's conversation, an answer already running, Redis unavailable.",
	}, []string{"reason"})
	for _, r := range RefusalReasons {
		m.refusals.WithLabelValues(r)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.gensRunning, m.providerUp, ended, m.tokenToFrame, rtt, m.refusals,
	)
	return m
}

// Refused counts one refused request (handlers.Refusals).
func (m *Metrics) Refused(reason string) {
	if !slices.Contains(RefusalReasons, reason) {
		reason = "other"
	}
	m.refusals.WithLabelValues(reason).Inc()
}

// RegisterHub adds the live hub's gauges and counters, read from stats
// (live.Hub.Stats) at every scrape.
func (m *Metrics) RegisterHub(stats func() live.Stats) {
	m.reg.MustRegister(newHubCollector(stats))
}

// Registry is the registry the metrics are in, to add more or to gather
// them in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics at Path, and nothing else.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return mux
}

// GenerationStarted implements generation.Observer.
func (m *Metrics) GenerationStarted() { m.gensRunning.Inc() }

// GenerationEnded implements generation.Observer.
func (m *Metrics) GenerationEnded(outcome string) {
	m.gensRunning.Dec()
	c, ok := m.gensEnded[outcome]
	if !ok {
		c = m.gensEnded[outcomeInterrupted]
	}
	c.Inc()
}

// ProviderUp records whether the model provider is up, after a call to it
// (llm.ProviderFault says whether an error means it is down).
func (m *Metrics) ProviderUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.providerUp.Set(v)
}

// TokenToFrame implements live.Observer.
func (m *Metrics) TokenToFrame(d time.Duration) {
	m.tokenToFrame.Observe(max(d, 0).Seconds())
}

// RedisHook times every command and pipeline of the client it is added to
// (rdb.AddHook).
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		o, ok := h.m.redisRTT[cmd.Name()]
		if !ok {
			o = h.m.redisRTT["other"]
		}
		o.Observe(time.Since(start).Seconds())
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.m.redisRTT["pipeline"].Observe(time.Since(start).Seconds())
		return err
	}
}

// hubCollector reads the hub's counters once per scrape. The hub keeps
// them as plain atomics on its hot path; nothing is paid between scrapes.
type hubCollector struct {
	stats func() live.Stats
	descs []hubMetric
}

type hubMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(live.Stats) int64
}

func newHubCollector(stats func() live.Stats) *hubCollector {
	gauge := func(name, help string, v func(live.Stats) int64) hubMetric {
		return hubMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v}
	}
	counter := func(name, help string, v func(live.Stats) int64) hubMetric {
		return hubMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, v}
	}
	return &hubCollector{stats: stats, descs: []hubMetric{
		gauge("parley_viewers_connected", "Live streams (SSE viewers) connected to this process.",
			func(s live.Stats) int64 { return s.Viewers }),
		gauge("parley_viewers_detached", "Of the connected live streams, those on hijacked HTTP/1.1 connections, written by Parley's own goroutine and buffer rather than net/http's.",
			func(s live.Stats) int64 { return s.Detached }),
		gauge("parley_rooms", "Conversations this process has a room for (watched, or with a generation listening for stop).",
			func(s live.Stats) int64 { return s.Rooms }),
		gauge("parley_owner_lists", "Browsers whose conversation list this process follows for their streams (one subscribed channel each).",
			func(s live.Stats) int64 { return s.Lists }),
		counter("parley_owner_list_reads_total", "Reads of a browser's conversation list, each shared by all that browser's streams on this process.",
			func(s live.Stats) int64 { return s.ListReads }),
		gauge("parley_redis_subscribed_channels", "Channels on the process's one Redis subscription (one per room and per followed browser list, plus the probe).",
			func(s live.Stats) int64 { return s.Subscriptions }),
		gauge("parley_redis_subscription_connections", "Redis connections in pub/sub mode: one, or one per master on a cluster.",
			func(s live.Stats) int64 { return s.SubscriptionConns }),
		counter("parley_frames_rendered_total", "Frames rendered by rooms: once per batch of events, whatever the number of viewers.",
			func(s live.Stats) int64 { return s.Frames }),
		counter("parley_frames_written_total", "Frames written to viewers (catch-ups included, heartbeats not).",
			func(s live.Stats) int64 { return s.FramesWritten }),
		counter("parley_written_bytes_total", "Bytes written to viewers' streams as they go on the wire (gzip-compressed for clients that take it), heartbeats included.",
			func(s live.Stats) int64 { return s.BytesWritten }),
		counter("parley_viewers_fast_forwarded_total", "Times a viewer fell behind and was brought to the current state in one frame.",
			func(s live.Stats) int64 { return s.FastForwards }),
		counter("parley_viewers_dropped_total", "Viewers disconnected because their connection would not take a write in time.",
			func(s live.Stats) int64 { return s.Dropped }),
		counter("parley_room_resyncs_total", "Times a room re-read Redis after a missed notice or a resubscription.",
			func(s live.Stats) int64 { return s.Resyncs }),
		counter("parley_subscription_probe_failures_total", "Times the Redis subscription did not deliver its own probe and was rebuilt.",
			func(s live.Stats) int64 { return s.ProbeFailures }),
	}}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, float64(d.value(s)))
	}
}
