package testredis

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// clusterNodeTimeout is cluster-node-timeout in ms: how long a silent
	// master stays up in its peers' eyes. Short, so a fail-over takes a few
	// seconds, but not so short that a busy 2-core machine causes false ones.
	clusterNodeTimeout = 2000
	// clusterTimeout bounds creation and every wait for the cluster to settle.
	clusterTimeout = 30 * time.Second
	// clusterSlots is the number of hash slots of every Redis Cluster.
	clusterSlots = 16384
)

// Cluster is a private Redis Cluster for one test: three masters with one
// replica each, six redis-server processes on free loopback ports, created
// with `redis-cli --cluster create` and stopped in t.Cleanup.
type Cluster struct {
	nodes []*Server
}

// ClusterNode is one node as the cluster sees it.
type ClusterNode struct {
	ID     string
	Addr   string
	Master bool
	Failed bool   // flagged fail or fail? (suspected) by the node asked
	Of     string // for a replica: the ID of its master
	Slots  [][2]int
}

// StartCluster starts a 3-master, 3-replica Redis Cluster and waits until
// every node reports cluster_state:ok and agrees on who serves each slot.
//
// It skips the test, saying why, only when redis-server has no cluster
// support or no sharded pub/sub (Redis before 7.0). A missing redis-server or
// redis-cli fails the test.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testredis: redis-server not found on PATH (%v); install it, e.g. apt-get install redis-server", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("testredis: redis-cli not found on PATH (%v); it comes with redis-server (Debian: redis-tools)", err)
	}
	if v := serverVersion(bin); v != "" && majorVersion(v) < 7 {
		t.Skipf("testredis: redis-server %s has no sharded pub/sub (SSUBSCRIBE needs Redis 7.0 or later); skipping the Redis Cluster test", v)
	}

	c := &Cluster{}
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
		// A replica may always take over, however long it was disconnected:
		// the tests kill masters on purpose.
		"--cluster-replica-validity-factor", "0",
		// Replicas sync at once instead of waiting 5 s for more of them.
		"--repl-diskless-sync-delay", "0",
	}
	for i := range 6 {
		s, err := startServer(t, bin, args)
		if err != nil {
			if i == 0 && strings.Contains(err.Error(), "cluster") && strings.Contains(err.Error(), "Bad directive") {
				t.Skipf("testredis: this redis-server has no cluster support: %v", err)
			}
			t.Fatalf("testredis: starting cluster node %d: %v", i, err)
		}
		c.nodes = append(c.nodes, s)
	}

	create := append([]string{"--cluster", "create"}, c.Addrs()...)
	create = append(create, "--cluster-replicas", "1", "--cluster-yes")
	cmd := exec.Command(cli, create...)
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(clusterTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("testredis: redis-cli --cluster create did not finish in %v:\n%s", clusterTimeout, out)
	}
	if err != nil {
		t.Fatalf("testredis: redis-cli %s: %v\n%s", strings.Join(create, " "), err, out)
	}
	c.WaitHealthy(t)
	return c
}

// Addrs returns every node's address (masters and replicas), as seeds for a
// cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// URL returns the cluster as one URL that go-redis's ParseClusterURL reads:
// "redis://first?addr=second&addr=...".
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	u := "redis://" + addrs[0]
	for i, a := range addrs[1:] {
		if i == 0 {
			u += "?"
		} else {
			u += "&"
		}
		u += "addr=" + a
	}
	return u
}

// Server returns the process listening on addr, nil when none of the
// cluster's does.
func (c *Cluster) Server(addr string) *Server {
	for _, s := range c.nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// Nodes returns the cluster as the node at addr sees it.
func (c *Cluster) Nodes(addr string) ([]ClusterNode, error) {
	reply, err := Command(addr, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	text, ok := reply.(string)
	if !ok {
		return nil, fmt.Errorf("CLUSTER NODES: unexpected reply %T", reply)
	}
	return parseClusterNodes(text)
}

// Masters returns the addresses of the masters serving slots, ordered by
// their first slot, as seen by the first live node.
func (c *Cluster) Masters(t testing.TB) []string {
	t.Helper()
	nodes := c.view(t)
	var ms []ClusterNode
	for _, n := range nodes {
		if n.Master && !n.Failed && len(n.Slots) > 0 {
			ms = append(ms, n)
		}
	}
	slices.SortFunc(ms, func(a, b ClusterNode) int { return a.Slots[0][0] - b.Slots[0][0] })
	addrs := make([]string, len(ms))
	for i, n := range ms {
		addrs[i] = n.Addr
	}
	return addrs
}

// MasterFor returns the address of the master serving key's hash slot.
func (c *Cluster) MasterFor(t testing.TB, key string) string {
	t.Helper()
	return c.masterOfSlot(t, c.Slot(t, key)).Addr
}

// Slot returns key's hash slot, as the cluster computes it.
func (c *Cluster) Slot(t testing.TB, key string) int {
	t.Helper()
	for _, s := range c.nodes {
		if !s.running() {
			continue
		}
		if reply, err := Command(s.Addr, "CLUSTER", "KEYSLOT", key); err == nil {
			if slot, ok := reply.(int64); ok {
				return int(slot)
			}
		}
	}
	t.Fatalf("testredis: no cluster node answers CLUSTER KEYSLOT")
	return 0
}

// ReplicaOf returns the address of a live replica of the master at addr.
func (c *Cluster) ReplicaOf(t testing.TB, master string) string {
	t.Helper()
	nodes := c.view(t)
	id := ""
	for _, n := range nodes {
		if n.Addr == master {
			id = n.ID
		}
	}
	for _, n := range nodes {
		if !n.Master && !n.Failed && n.Of == id && c.Server(n.Addr).running() {
			return n.Addr
		}
	}
	t.Fatalf("testredis: master %s has no live replica", master)
	return ""
}

// view returns CLUSTER NODES from the first node that answers.
func (c *Cluster) view(t testing.TB) []ClusterNode {
	t.Helper()
	var lastErr error
	for _, s := range c.nodes {
		if !s.running() {
			continue
		}
		nodes, err := c.Nodes(s.Addr)
		if err == nil {
			return nodes
		}
		lastErr = err
	}
	t.Fatalf("testredis: no cluster node answers CLUSTER NODES: %v", lastErr)
	return nil
}

// parseClusterNodes reads the text of CLUSTER NODES.
func parseClusterNodes(text string) ([]ClusterNode, error) {
	var nodes []ClusterNode
	for line := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES: short line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := strings.Split(f[2], ",")
		n := ClusterNode{
			ID:     f[0],
			Addr:   addr,
			Master: slices.Contains(flags, "master"),
			Failed: slices.Contains(flags, "fail") || slices.Contains(flags, "fail?"),
		}
		if f[3] != "-" {
			n.Of = f[3]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // a slot being migrated or imported
				continue
			}
			lo, hi, found := strings.Cut(s, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				return nil, fmt.Errorf("CLUSTER NODES: bad slot %q", s)
			}
			b := a
			if found {
				if b, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("CLUSTER NODES: bad slot %q", s)
				}
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
