package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws one status line on stderr while a scenario runs: a bar of
// viewers who saw the end, and the live totals. On a terminal it redraws in
// place; otherwise it writes a line every few seconds.
type progress struct {
	w     io.Writer
	tty   bool
	c     counters
	mu    sync.Mutex
	name  string
	ph    string
	total int
	words int
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

func newProgress(w *os.File) *progress {
	tty := false
	if fi, err := w.Stat(); err == nil {
		tty = fi.Mode()&os.ModeCharDevice != 0
	}
	return &progress{w: w, tty: tty}
}

// begin starts drawing for one scenario run.
func (p *progress) begin(name string) {
	p.mu.Lock()
	p.name, p.ph, p.total, p.words, p.start = name, "starting", 0, 0, time.Now()
	p.c = counters{}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	go func() {
		defer close(p.done)
		every := 250 * time.Millisecond
		if !p.tty {
			every = 5 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				p.draw(true)
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
}

func (p *progress) end() {
	close(p.stop)
	<-p.done
}

func (p *progress) phase(s string) {
	p.mu.Lock()
	p.ph = s
	p.mu.Unlock()
	if !p.tty {
		p.draw(false)
	}
}

// expect sets what the bar counts to: viewers (or steps), and clock words.
func (p *progress) expect(total, words int) {
	p.mu.Lock()
	p.total, p.words = total, words
	p.mu.Unlock()
}

func (p *progress) draw(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := p.c.done.Load()
	const width = 24
	filled := 0
	if p.total > 0 {
		filled = int(min(done, int64(p.total)) * width / int64(p.total))
	}
	bar := strings.Repeat("#", filled) + strings.Repeat("-", width-filled)
	line := fmt.Sprintf("%-22s %-22s [%s] %d/%d  streams %d  frames %d  tokens %d  %.1f MB  %5.1fs",
		p.name, p.ph, bar, done, p.total, p.c.open.Load(), p.c.frames.Load(), p.c.tokens.Load(),
		float64(p.c.bytes.Load())/1e6, time.Since(p.start).Seconds())
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, line)
}
