package testredis

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MoveSlot reshards one slot to the master at addr, keys and all, as
// `redis-cli --cluster reshard` does (IMPORTING, MIGRATING, MIGRATE, then
// SETSLOT NODE on every master), and waits until the cluster agrees.
func (c *Cluster) MoveSlot(t testing.TB, slot int, to string) {
	t.Helper()
	from := c.masterOfSlot(t, slot)
	if from.Addr == to {
		return
	}
	var dst ClusterNode
	for _, n := range c.view(t) {
		if n.Addr == to {
			dst = n
		}
	}
	if !dst.Master {
		t.Fatalf("testredis: %s is not a master", to)
	}
	s := strconv.Itoa(slot)
	must := func(addr string, args ...string) any {
		t.Helper()
		r, err := Command(addr, args...)
		if err != nil {
			t.Fatalf("testredis: %s on %s: %v", strings.Join(args, " "), addr, err)
		}
		return r
	}
	must(to, "CLUSTER", "SETSLOT", s, "IMPORTING", from.ID)
	must(from.Addr, "CLUSTER", "SETSLOT", s, "MIGRATING", dst.ID)
	host, port, _ := net.SplitHostPort(to)
	for {
		keys, _ := must(from.Addr, "CLUSTER", "GETKEYSINSLOT", s, "100").([]any)
		if len(keys) == 0 {
			break
		}
		args := []string{"MIGRATE", host, port, "", "0", "5000", "KEYS"}
		for _, k := range keys {
			args = append(args, k.(string))
		}
		must(from.Addr, args...)
	}
	// The new owner first, then the old one, then the rest, as redis-cli
	// does, so that no node points a client back and forth.
	must(to, "CLUSTER", "SETSLOT", s, "NODE", dst.ID)
	must(from.Addr, "CLUSTER", "SETSLOT", s, "NODE", dst.ID)
	for _, n := range c.view(t) {
		if n.Master && len(n.Slots) > 0 && n.Addr != to && n.Addr != from.Addr {
			must(n.Addr, "CLUSTER", "SETSLOT", s, "NODE", dst.ID)
		}
	}
	c.WaitHealthy(t)
}

func (c *Cluster) masterOfSlot(t testing.TB, slot int) ClusterNode {
	t.Helper()
	for _, n := range c.view(t) {
		if !n.Master || n.Failed {
			continue
		}
		for _, r := range n.Slots {
			if slot >= r[0] && slot <= r[1] {
				return n
			}
		}
	}
	t.Fatalf("testredis: no master serves slot %d", slot)
	return ClusterNode{}
}

// Failover makes the replica of the master at addr take over with CLUSTER
// FAILOVER (a graceful hand-over: no write is lost) and waits until the
// cluster is healthy again. It returns the new master's address; the old one
// keeps running as its replica.
func (c *Cluster) Failover(t testing.TB, master string) string {
	t.Helper()
	replica := c.ReplicaOf(t, master)
	if _, err := Command(replica, "CLUSTER", "FAILOVER"); err != nil {
		t.Fatalf("testredis: CLUSTER FAILOVER on %s: %v", replica, err)
	}
	c.waitMaster(t, replica)
	c.WaitHealthy(t)
	return replica
}

// KillMaster kills the master at addr with SIGKILL, as a crash would, and
// waits until its replica has been elected in its place and every live node
// reports the cluster healthy. Writes the replica had not received yet are
// lost, as in production. It returns the new master's address.
func (c *Cluster) KillMaster(t testing.TB, master string) string {
	t.Helper()
	replica := c.ReplicaOf(t, master)
	s := c.Server(master)
	if s == nil {
		t.Fatalf("testredis: %s is not a node of this cluster", master)
	}
	s.kill()
	c.waitMaster(t, replica)
	c.WaitHealthy(t)
	return replica
}

// Restart starts a stopped or killed node again on its port with its
// nodes.conf, so it rejoins the cluster (as a replica, if it lost its slots).
func (c *Cluster) Restart(t testing.TB, addr string) {
	t.Helper()
	s := c.Server(addr)
	if s == nil {
		t.Fatalf("testredis: %s is not a node of this cluster", addr)
	}
	s.Restart(t)
	c.WaitHealthy(t)
}

func (c *Cluster) waitMaster(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		reply, err := Command(addr, "ROLE")
		if arr, ok := reply.([]any); err == nil && ok && len(arr) > 0 && arr[0] == "master" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: %s did not become a master within %v (ROLE: %v, %v)", addr, clusterTimeout, reply, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// sees the same set of live masters serving all 16384 slots, and every live
// replica is in sync with its master.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		err := c.healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: cluster not healthy within %v: %v", clusterTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) healthy() error {
	want := ""
	for _, s := range c.nodes {
		if !s.running() {
			continue
		}
		reply, err := Command(s.Addr, "CLUSTER", "INFO")
		if err != nil {
			return fmt.Errorf("%s: %w", s.Addr, err)
		}
		if info, _ := reply.(string); !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state is not ok", s.Addr)
		}
		nodes, err := c.Nodes(s.Addr)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Addr, err)
		}
		got, err := c.shape(nodes)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Addr, err)
		}
		if want == "" {
			want = got
		} else if got != want {
			return fmt.Errorf("nodes disagree:\n%s\nvs\n%s", got, want)
		}
		reply, err = Command(s.Addr, "INFO", "replication")
		if err != nil {
			return fmt.Errorf("%s: %w", s.Addr, err)
		}
		info, _ := reply.(string)
		if strings.Contains(info, "role:slave") && !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("%s: replica not in sync with its master", s.Addr)
		}
	}
	if want == "" {
		return errors.New("no node is running")
	}
	return nil
}

// shape checks one node's view of a healthy cluster (live masters serving
// every slot, every live node either such a master or a replica of one) and
// returns it in a form that two nodes with the same view render equally.
func (c *Cluster) shape(nodes []ClusterNode) (string, error) {
	byID := map[string]ClusterNode{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	covered := 0
	var lines []string
	for _, n := range nodes {
		up := c.Server(n.Addr).running()
		switch {
		case !up:
			if n.Master && len(n.Slots) > 0 {
				return "", fmt.Errorf("sees %s serving slots while it is down", n.Addr)
			}
			continue
		case n.Failed:
			return "", fmt.Errorf("sees %s failed while it is up", n.Addr)
		case n.Master && len(n.Slots) > 0:
			for _, r := range n.Slots {
				covered += r[1] - r[0] + 1
			}
			lines = append(lines, fmt.Sprintf("%s master %v", n.Addr, n.Slots))
		case n.Master:
			return "", fmt.Errorf("sees %s as a master without slots", n.Addr)
		default:
			m, ok := byID[n.Of]
			if !ok || !m.Master || len(m.Slots) == 0 {
				return "", fmt.Errorf("sees %s as a replica of a node that serves nothing", n.Addr)
			}
			lines = append(lines, fmt.Sprintf("%s replica of %s", n.Addr, m.Addr))
		}
	}
	if covered != clusterSlots {
		return "", fmt.Errorf("sees %d of %d slots served", covered, clusterSlots)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}
