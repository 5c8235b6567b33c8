package handlers_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"
	"io"

	"github.com/parley-chat/parley/llm"
	"github.com/parley-chat/parley/store"
)

func TestZZDump(t *testing.T) {
	a := newApp(t, func(c *appConfig) { c.demo = llm.DemoConfig{TokensPerSecond: 200, Tokens: 50} })
	conv := a.create(t, "[[echo]]Hello.")
	a.waitStatus(t, conv, 1, store.StatusDone)
	_, cursor := a.page(t, conv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.URL+"/c/"+conv+"/events?after="+cursor, nil)
	res, err := a.Client.Do(req)
	if err != nil { t.Fatal(err) }
	a.post(t, conv, "[[long 2000]]", store.NewID())
	f, _ := os.Create("/tmp/sse.txt")
	go func() { a.waitStatus(t, conv, 3, store.StatusDone); time.Sleep(time.Second); cancel() }()
	io.Copy(f, res.Body)
	f.Close()
}
