package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
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

// startServer starts one redis-server like Start, but returns the error
// instead of failing, so the caller can tell a missing feature from a fault.
func startServer(t testing.TB, bin string, args []string) (*Server, error) {
	s := &Server{bin: bin, args: append([]string(nil), args...), dir: t.TempDir()}
	t.Cleanup(s.Stop)
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	for range portAttempts {
		port, perr := freePort()
		if perr != nil {
			return nil, fmt.Errorf("picking a free port: %w", perr)
		}
		// The cluster bus listens on port+10000: both must be free.
		if port+10000 > 65535 || !portFree(port+10000) {
			err = fmt.Errorf("bus port %d: %w", port+10000, errAddrInUse)
			continue
		}
		s.port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.startLocked(); err == nil || !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

var versionRE = regexp.MustCompile(`v=(\d+\.\d+\.\d+)`)

// serverVersion returns redis-server's version, "" when it cannot tell.
func serverVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return ""
	}
	return string(m[1])
}

func majorVersion(v string) int {
	major, _, _ := strings.Cut(v, ".")
	n, _ := strconv.Atoi(major)
	return n
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

// running reports whether the server's current process is alive.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.exited()
}

// kill ends the process with SIGKILL and waits for it: a crash, not a
// shutdown.
func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Command sends one command to the server at addr over a fresh connection
// and returns its reply: string, int64, nil, []any, or an error for an error
// reply. It needs no Redis client, like the rest of this package.
func Command(addr string, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, sb.String()); err != nil {
		return nil, err
	}
	return readReply(bufio.NewReader(conn))
}

// RedisError is an error reply.
type RedisError string

func (e RedisError) Error() string { return string(e) }

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply line")
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, RedisError(body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 64<<20 {
			return nil, fmt.Errorf("bad bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 1<<20 {
			return nil, fmt.Errorf("bad array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			v, err := readReply(r)
			if err != nil {
				var re RedisError
				if !errors.As(err, &re) {
					return nil, err
				}
				v = re
			}
			arr[i] = v
		}
		return arr, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
