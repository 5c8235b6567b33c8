package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions are the options of the Redis client the settings name:
// a cluster client's (cluster non-nil), a single server's (single non-nil),
// or neither when no Redis is configured and the embedded one is meant.
// Both carry the configured timeouts and pool size.
func (c Config) RedisOptions() (single *redis.Options, cluster *redis.ClusterOptions, err error) {
	if c.RedisURL == "" && c.RedisClusterAddrs == "" && !c.RedisCluster {
		return nil, nil, nil
	}
	cluster, err = c.clusterOptions()
	if err != nil {
		return nil, nil, err
	}
	if cluster != nil {
		cluster.DialTimeout, cluster.ReadTimeout, cluster.WriteTimeout = c.RedisTimeout, c.RedisTimeout, c.RedisTimeout
		cluster.ContextTimeoutEnabled = true
		if c.RedisPoolSize > 0 {
			cluster.PoolSize = c.RedisPoolSize
		}
		// go-redis re-reads the slot map on MOVED, but not when a master
		// dies: it keeps dialling the dead address until its periodic reload
		// (60 s by default). The hub tells it sooner (live/sharded.go); this
		// bounds the wait when the hub cannot.
		cluster.ClusterStateReloadInterval = 10 * time.Second
		return nil, cluster, nil
	}
	single, err = redis.ParseURL(c.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// Without a bound a paused or overloaded Redis holds every request (and
	// its goroutine) until it answers; with one they fail fast and clearly.
	single.DialTimeout, single.ReadTimeout, single.WriteTimeout = c.RedisTimeout, c.RedisTimeout, c.RedisTimeout
	single.ContextTimeoutEnabled = true // a request's deadline bounds its commands too
	if c.RedisPoolSize > 0 {
		single.PoolSize = c.RedisPoolSize
	}
	return single, nil, nil
}

// clusterOptions returns the options of a Redis Cluster client when the
// settings name a cluster, and nil when they name a single server.
//
// A cluster is named by REDIS_CLUSTER_ADDRS (seed nodes; REDIS_URL, if set,
// then only brings credentials, TLS and options), by a REDIS_URL with addr=
// parameters (go-redis's cluster URL: redis://host:port?addr=host2:port2),
// or by REDIS_URL together with REDIS_CLUSTER=1. A client of any seed node
// learns the rest of the cluster from it.
func (c Config) clusterOptions() (*redis.ClusterOptions, error) {
	var seeds []string
	for a := range strings.SplitSeq(c.RedisClusterAddrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("REDIS_CLUSTER_ADDRS: %q is not host:port", a)
		}
		seeds = append(seeds, a)
	}
	named := len(seeds) > 0 || c.RedisCluster
	if c.RedisURL != "" && !named {
		u, err := url.Parse(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		named = u.Query().Has("addr")
	}
	if !named {
		return nil, nil
	}
	if c.RedisURL == "" {
		if len(seeds) == 0 {
			return nil, errors.New("REDIS_CLUSTER is set but neither REDIS_URL nor REDIS_CLUSTER_ADDRS names a node")
		}
		return &redis.ClusterOptions{Addrs: seeds}, nil
	}
	opts, err := redis.ParseClusterURL(c.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL (cluster): %w", err)
	}
	if len(seeds) > 0 {
		opts.Addrs = seeds
	}
	return opts, nil
}
