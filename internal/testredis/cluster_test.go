package testredis

import (
	"strings"
	"testing"
)

// TestCluster starts a cluster, checks its shape, fails a master over both
// ways and checks that the cluster heals each time.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t)
	masters := c.Masters(t)
	if len(masters) != 3 {
		t.Fatalf("masters = %v, want 3", masters)
	}
	for _, m := range masters {
		if r := c.ReplicaOf(t, m); r == "" || r == m {
			t.Fatalf("master %s has replica %q", m, r)
		}
	}
	if !strings.HasPrefix(c.URL(), "redis://"+c.Addrs()[0]+"?addr=") || strings.Count(c.URL(), "addr=") != 5 {
		t.Fatalf("URL() = %q", c.URL())
	}

	promoted := c.Failover(t, masters[0])
	if got := c.Masters(t); !contains(got, promoted) || contains(got, masters[0]) {
		t.Fatalf("after CLUSTER FAILOVER masters = %v, want %s instead of %s", got, promoted, masters[0])
	}

	promoted = c.KillMaster(t, masters[1])
	if got := c.Masters(t); !contains(got, promoted) || contains(got, masters[1]) || len(got) != 3 {
		t.Fatalf("after killing %s masters = %v, want %s in its place", masters[1], got, promoted)
	}
	c.Restart(t, masters[1])
	if r, err := Command(masters[1], "ROLE"); err != nil || r.([]any)[0] != "slave" {
		t.Fatalf("restarted old master: ROLE = %v, %v; want a replica", r, err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
