package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestClusterOptions: which settings name a Redis Cluster, and with what
// seeds.
func TestClusterOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     config
		cluster bool
		seeds   []string
		user    string
		wantErr string
	}{
		{name: "single URL", cfg: config{RedisURL: "redis://h:6379/0"}},
		{name: "embedded", cfg: config{}},
		{name: "cluster URL", cfg: config{RedisURL: "redis://u:p@h1:7000?addr=h2:7001&addr=h3:7002"},
			cluster: true, seeds: []string{"h1:7000", "h2:7001", "h3:7002"}, user: "u"},
		{name: "flag", cfg: config{RedisURL: "rediss://h1:7000", RedisCluster: true},
			cluster: true, seeds: []string{"h1:7000"}},
		{name: "addrs", cfg: config{RedisClusterAddrs: "h1:7000, h2:7001"},
			cluster: true, seeds: []string{"h1:7000", "h2:7001"}},
		{name: "addrs with URL credentials", cfg: config{RedisURL: "redis://u:p@h0:1", RedisClusterAddrs: "h1:7000"},
			cluster: true, seeds: []string{"h1:7000"}, user: "u"},
		{name: "bad addrs", cfg: config{RedisClusterAddrs: "h1"}, wantErr: "REDIS_CLUSTER_ADDRS"},
		{name: "flag alone", cfg: config{RedisCluster: true}, wantErr: "REDIS_CLUSTER is set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := clusterOptions(tc.cfg)
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
	env := map[string]string{"REDIS_URL": "redis://h1:7000", "REDIS_CLUSTER": "1", "REDIS_CLUSTER_ADDRS": "h2:7001"}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || !cfg.RedisCluster || cfg.RedisClusterAddrs != "h2:7001" {
		t.Fatalf("parseConfig: %+v %v", cfg, err)
	}
}
