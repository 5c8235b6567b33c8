package config

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClusterOptions: which settings name a Redis Cluster, and with what
// seeds.
func TestClusterOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     Config
		cluster bool
		seeds   []string
		user    string
		wantErr string
	}{
		{name: "single URL", cfg: Config{RedisURL: "redis://h:6379/0"}},
		{name: "embedded", cfg: Config{}},
		{name: "cluster URL", cfg: Config{RedisURL: "redis://u:p@h1:7000?addr=h2:7001&addr=h3:7002"},
			cluster: true, seeds: []string{"h1:7000", "h2:7001", "h3:7002"}, user: "u"},
		{name: "flag", cfg: Config{RedisURL: "rediss://h1:7000", RedisCluster: true},
			cluster: true, seeds: []string{"h1:7000"}},
		{name: "addrs", cfg: Config{RedisClusterAddrs: "h1:7000, h2:7001"},
			cluster: true, seeds: []string{"h1:7000", "h2:7001"}},
		{name: "addrs with URL credentials", cfg: Config{RedisURL: "redis://u:p@h0:1", RedisClusterAddrs: "h1:7000"},
			cluster: true, seeds: []string{"h1:7000"}, user: "u"},
		{name: "bad addrs", cfg: Config{RedisClusterAddrs: "h1"}, wantErr: "REDIS_CLUSTER_ADDRS"},
		{name: "flag alone", cfg: Config{RedisCluster: true}, wantErr: "REDIS_CLUSTER is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts, err := tc.cfg.clusterOptions()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one about %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (opts != nil) != tc.cluster {
				t.Fatalf("cluster = %v, want %v", opts != nil, tc.cluster)
			}
			if opts == nil {
				return
			}
			if !slices.Equal(opts.Addrs, tc.seeds) || opts.Username != tc.user {
				t.Fatalf("seeds %v user %q, want %v %q", opts.Addrs, opts.Username, tc.seeds, tc.user)
			}
		})
	}
	// The environment names a cluster too.
	e := map[string]string{"REDIS_URL": "redis://h1:7000", "REDIS_CLUSTER": "1", "REDIS_CLUSTER_ADDRS": "h2:7001"}
	cfg, err := Parse(nil, env(e), io.Discard)
	if err != nil || !cfg.RedisCluster || cfg.RedisClusterAddrs != "h2:7001" {
		t.Fatalf("Parse: %+v %v", cfg, err)
	}
}

// TestRedisOptions: the client options carry the timeouts and the pool
// size, for one server and for a cluster, and nothing names the embedded
// Redis.
func TestRedisOptions(t *testing.T) {
	t.Parallel()
	base := Config{RedisTimeout: 2 * time.Second, RedisPoolSize: 7}
	c := base
	if single, cluster, err := c.RedisOptions(); single != nil || cluster != nil || err != nil {
		t.Fatalf("no Redis named: %v %v %v", single, cluster, err)
	}
	c.RedisURL = "redis://h:6379/2"
	single, cluster, err := c.RedisOptions()
	if err != nil || cluster != nil || single == nil {
		t.Fatalf("one server: %v %v %v", single, cluster, err)
	}
	if single.Addr != "h:6379" || single.DB != 2 || single.ReadTimeout != 2*time.Second ||
		single.DialTimeout != 2*time.Second || single.PoolSize != 7 || !single.ContextTimeoutEnabled {
		t.Fatalf("one server: %+v", single)
	}
	c.RedisURL = "redis://h1:7000?addr=h2:7001"
	single, cluster, err = c.RedisOptions()
	if err != nil || single != nil || cluster == nil {
		t.Fatalf("cluster: %v %v %v", single, cluster, err)
	}
	if cluster.WriteTimeout != 2*time.Second || cluster.PoolSize != 7 || !cluster.ContextTimeoutEnabled ||
		cluster.ClusterStateReloadInterval != 10*time.Second {
		t.Fatalf("cluster: %+v", cluster)
	}
	c.RedisURL = "http://h"
	if _, _, err := c.RedisOptions(); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Fatalf("a bad URL: %v", err)
	}
}
