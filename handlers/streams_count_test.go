package handlers

import (
	"fmt"
	"sync"
	"testing"
)

// TestAddressStreamsCount: places are counted per address, given back once
// however often release is called, and an address with none left is
// forgotten (the map does not grow with every address ever seen).
func TestAddressStreamsCount(t *testing.T) {
	t.Parallel()
	a := newAddressStreams(2)
	r1, ok1 := a.take("a")
	r2, ok2 := a.take("a")
	_, ok3 := a.take("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("takes: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := a.take("b"); !ok {
		t.Fatal("another address was refused")
	}
	r1()
	r1() // a second release gives nothing back
	if _, ok := a.take("a"); !ok {
		t.Fatal("a released place was not free")
	}
	if _, ok := a.take("a"); ok {
		t.Fatal("a double release freed two places")
	}
	r2()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			addr := fmt.Sprint("c", i%10)
			if release, ok := a.take(addr); ok {
				release()
			}
		})
	}
	wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.n) != 2 || a.n["a"] != 1 || a.n["b"] != 1 {
		t.Fatalf("counts %v, want a:1 b:1 and no others", a.n)
	}
	if _, ok := newAddressStreams(0).take("x"); !ok {
		t.Fatal("no cap refused a stream")
	}
}
