package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// clusterOptions returns the options of a Redis Cluster client when the
// configuration names a cluster, and nil when it names a single server.
//
// A cluster is named by REDIS_CLUSTER_ADDRS (seed nodes; REDIS_URL, if set,
// then only brings credentials, TLS and options), by a REDIS_URL with addr=
// parameters (go-redis's cluster URL: redis://host:port?addr=host2:port2),
// or by REDIS_URL together with REDIS_CLUSTER=1. A client of any seed node
// learns the rest of the cluster from it.
func clusterOptions(cfg config) (*redis.ClusterOptions, error) {
	var seeds []string
	for a := range strings.SplitSeq(cfg.RedisClusterAddrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("REDIS_CLUSTER_ADDRS: %q is not host:port", a)
		}
		seeds = append(seeds, a)
	}
	named := len(seeds) > 0 || cfg.RedisCluster
	if cfg.RedisURL != "" && !named {
		u, err := url.Parse(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		named = u.Query().Has("addr")
	}
	if !named {
		return nil, nil
	}
	if cfg.RedisURL == "" {
		if len(seeds) == 0 {
			return nil, errors.New("REDIS_CLUSTER is set but neither REDIS_URL nor REDIS_CLUSTER_ADDRS names a node")
		}
		return &redis.ClusterOptions{Addrs: seeds}, nil
	}
	opts, err := redis.ParseClusterURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL (cluster): %w", err)
	}
	if len(seeds) > 0 {
		opts.Addrs = seeds
	}
	return opts, nil
}
