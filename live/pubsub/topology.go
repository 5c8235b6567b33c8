package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// topology says which master serves each slot.
type topology struct {
	addrs []string        // masters serving at least one slot
	owner [numSlots]int16 // index into addrs; -1 when no master serves it
}

func (t *topology) ownerOf(slot int) string {
	if i := t.owner[slot]; i >= 0 {
		return t.addrs[i]
	}
	return ""
}

// setOwner records that addr serves slot (a MOVED reply said so).
func (t *topology) setOwner(slot int, addr string) {
	i := slices.Index(t.addrs, addr)
	if i < 0 {
		t.addrs = append(t.addrs, addr)
		i = len(t.addrs) - 1
	}
	t.owner[slot] = int16(i)
}

// sameOwners reports whether o gives every slot the same master as t.
func (t *topology) sameOwners(o *topology) bool {
	for slot := range numSlots {
		if t.ownerOf(slot) != o.ownerOf(slot) {
			return false
		}
	}
	return true
}

// serves returns the masters that own at least one slot.
func (t *topology) serves() []string {
	used := make([]bool, len(t.addrs))
	for _, i := range t.owner {
		if i >= 0 {
			used[i] = true
		}
	}
	var out []string
	for i, a := range t.addrs {
		if used[i] {
			out = append(out, a)
		}
	}
	return out
}

// movedHint is what a MOVED reply said: addr serves the slot now.
type movedHint struct {
	addr    string
	until   time.Time // then forgotten, in case addr itself went away
	applied bool
}

// hintTTL bounds how long a MOVED reply overrides the slot map.
const hintTTL = 10 * time.Second

// fetchTopology reads which master serves each slot.
func (s *cluster) fetchTopology(ctx context.Context) (*topology, error) {
	t := &topology{}
	for i := range t.owner {
		t.owner[i] = -1
	}
	ctx, cancel := context.WithTimeout(ctx, topologyTimeout)
	defer cancel()
	read := s.shards
	if read == nil {
		read = func(ctx context.Context) ([]redis.ClusterShard, error) { return s.client.ClusterShards(ctx).Result() }
	}
	shards, err := read(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster shards: %w", err)
	}
	for _, sh := range shards {
		addr := masterAddr(sh.Nodes)
		if addr == "" {
			continue
		}
		for _, r := range sh.Slots {
			if r.Start < 0 || r.End >= numSlots || r.Start > r.End {
				continue
			}
			for slot := r.Start; slot <= r.End; slot++ {
				t.setOwner(int(slot), addr)
			}
		}
	}
	if len(t.addrs) == 0 {
		return nil, errors.New("cluster shards: no master serves any slot")
	}
	return t, nil
}

// redirect reads a MOVED or ASK error reply: "MOVED 3999 127.0.0.1:6381".
func redirect(err error) (slot int, addr string, ok bool) {
	f := strings.Fields(err.Error())
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return 0, "", false
	}
	slot, perr := strconv.Atoi(f[1])
	if perr != nil || slot < 0 || slot >= numSlots {
		return 0, "", false
	}
	if f[0] == "MOVED" {
		addr = f[2]
	}
	return slot, addr, true
}

// probeFor returns a probe channel of this process in one of addr's slots,
// "" when addr serves none. It must be called with s.mu held.
func (s *cluster) probeFor(addr string) string {
	if s.topo == nil {
		return ""
	}
	for i := range 1 << 20 {
		tag := strconv.Itoa(i)
		if s.topo.ownerOf(keySlot(tag)) == addr {
			return s.probe + ":{" + tag + "}"
		}
	}
	return ""
}

// keySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first "{" and the next "}" when
// not empty), modulo 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % numSlots
}

// masterAddr is the address of the master among a shard's nodes, "" when
// none is listed.
func masterAddr(nodes []redis.Node) string {
	for _, n := range nodes {
		if n.Role != "master" {
			continue
		}
		host, port := n.Endpoint, n.Port
		if host == "" || host == "?" {
			host = n.IP
		}
		if port == 0 {
			port = n.TLSPort
		}
		return net.JoinHostPort(host, strconv.FormatInt(port, 10))
	}
	return ""
}
