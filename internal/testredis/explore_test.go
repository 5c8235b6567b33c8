package testredis

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestExploreKill(t *testing.T) {
	c := StartCluster(t)
	ctx := context.Background()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	m := c.Masters(t)
	key := ""
	for i := 0; ; i++ {
		k := "k" + string(rune('a'+i))
		if c.MasterFor(t, k) == m[0] {
			key = k
			break
		}
	}
	t.Log(cc.Set(ctx, key, "v", 0).Err())
	t0 := time.Now()
	c.Server(m[0]).kill()
	for i := 0; i < 60; i++ {
		err := cc.Set(ctx, key, "v", 0).Err()
		t.Log(time.Since(t0).Round(time.Millisecond), err)
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
}
