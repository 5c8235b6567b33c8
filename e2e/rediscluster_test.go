package e2e_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/e2e/harness"
	"github.com/parley-chat/parley/internal/testredis"
	"github.com/parley-chat/parley/store"
)

// TestParleyOnRedisCluster runs the program against a Redis Cluster named by
// a cluster URL: it holds exactly one subscription connection per master,
// and an answer's notices go out with SPUBLISH on its conversation's master.
func TestParleyOnRedisCluster(t *testing.T) {
	t.Parallel()
	c := testredis.StartCluster(t)
	_, base, _ := launch(t, harness.Speed{TPS: 40, Tokens: 120}, c.URL())

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
