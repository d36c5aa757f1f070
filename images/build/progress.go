package build

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/swarmboot/swarmboot/images/rootfs"
)

// progress prints build steps: on a terminal one live line that is
// rewritten in place; otherwise plain lines, one per step.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	term bool
	last time.Time
	open bool // a live line is on screen
}

func newProgress(w io.Writer, term bool) *progress { return &progress{w: w, term: term} }

// step prints a finished step on its own line.
func (p *progress) step(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// live updates the live line (terminal only, at most 10 times a second).
func (p *progress) live(format string, args ...any) {
	if !p.term {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
	p.open = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
}

// countingWriter passes entries on and shows how far the stream got.
type countingWriter struct {
	w       rootfs.Writer
	p       *progress
	entries int
	bytes   int64
}

func (c *countingWriter) WriteEntry(h *rootfs.Header, r io.Reader) error {
	c.entries++
	c.bytes += h.Size
	name := h.Name
	if len(name) > 40 { // keep the live line on one terminal row
		name = "…" + name[len(name)-39:]
	}
	c.p.live("rootfs: %d entries, %s  %s", c.entries, human(c.bytes), name)
	return c.w.WriteEntry(h, r)
}
