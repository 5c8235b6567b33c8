package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
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

// TestParleyOnRedisCluster runs the program against a Redis Cluster named by
// a cluster URL: it holds exactly one subscription connection per master,
// and an answer's notices go out with SPUBLISH on its conversation's master.
func TestParleyOnRedisCluster(t *testing.T) {
	c := testredis.StartCluster(t)
	base, _ := launchParley(t, fast, c.URL())

	masters := c.Masters(t)
	deadline := time.Now().Add(30 * time.Second)
	for !onePubSubConnEach(t, masters) {
		if time.Now().After(deadline) {
			t.Fatal("parley did not open one subscription connection on each master")
		}
		time.Sleep(50 * time.Millisecond)
	}

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.PostForm(base+"/c", map[string][]string{"text": {"hello cluster"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: status %d", res.StatusCode)
	}
	// The server chose the ID: the redirect names it.
	conv, ok := strings.CutPrefix(res.Header.Get("Location"), "/c/")
	if !ok || !store.ValidConversationID(conv) {
		t.Fatalf("create: redirected to %q", res.Header.Get("Location"))
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	st := store.New(cc, store.Config{Sharded: true})
	for {
		snap, err := st.Snapshot(context.Background(), conv, store.ID{})
		if err == nil && len(snap.Messages) == 2 && snap.Messages[1].Status == store.StatusDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the answer did not finish: %+v %v", snap, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	master := c.MasterFor(t, store.Channel(conv))
	reply, err := testredis.Command(master, "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	stats := reply.(string)
	if !strings.Contains(stats, "cmdstat_spublish:") || strings.Contains(stats, "cmdstat_publish:") {
		t.Fatalf("master %s: want SPUBLISH and no PUBLISH:\n%s", master, stats)
	}
	if !onePubSubConnEach(t, masters) {
		t.Fatal("subscription connections changed while an answer streamed")
	}
}

func onePubSubConnEach(t *testing.T, addrs []string) bool {
	t.Helper()
	for _, a := range addrs {
		reply, err := testredis.Command(a, "CLIENT", "LIST", "TYPE", "PUBSUB")
		if err != nil {
			t.Fatalf("CLIENT LIST on %s: %v", a, err)
		}
		if n := strings.Count(strings.TrimSpace(reply.(string)), "\n") + 1; strings.TrimSpace(reply.(string)) == "" || n != 1 {
			return false
		}
	}
	return true
}
