package qemu

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// console collects a VM's serial output line by line and wakes waiters.
type console struct {
	mu      sync.Mutex
	all     strings.Builder
	lines   []string
	partial strings.Builder
	changed chan struct{} // closed and replaced on every change
	eof     bool
}

func newConsole() *console { return &console{changed: make(chan struct{})} }

func (c *console) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// copy reads r until EOF, mirroring it to log (may be nil).
func (c *console) copy(r io.Reader, log io.Writer) {
	br := bufio.NewReader(r)
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if log != nil {
				log.Write(buf[:n])
			}
			c.add(string(buf[:n]))
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	if c.partial.Len() > 0 {
		c.lines = append(c.lines, c.partial.String())
		c.partial.Reset()
	}
	c.eof = true
	c.notify()
	c.mu.Unlock()
}

func (c *console) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all.WriteString(s)
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			c.partial.WriteString(s)
			break
		}
		c.partial.WriteString(s[:i])
		c.lines = append(c.lines, strings.TrimRight(c.partial.String(), "\r"))
		c.partial.Reset()
		s = s[i+1:]
	}
	c.notify()
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all.String()
}

// waitFor returns the first complete line matching re (a line still being
// written could match a prefix of what it becomes; the last line counts once
// the output has ended). exited is consulted once the output has ended.
func (c *console) waitFor(ctx context.Context, re *regexp.Regexp, exited func() error) (string, error) {
	next := 0
	for {
		c.mu.Lock()
		for ; next < len(c.lines); next++ {
			if re.MatchString(c.lines[next]) {
				l := c.lines[next]
				c.mu.Unlock()
				return l, nil
			}
		}
		eof, ch := c.eof, c.changed
		c.mu.Unlock()
		if eof {
			return "", fmt.Errorf("qemu: VM exited before its serial console showed /%s/: %v", re, exited())
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("qemu: waiting for /%s/ on the serial console: %w (last output: %q)", re, ctx.Err(), c.tail(5))
		}
	}
}

// tail returns the last n lines.
func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(append(append([]string{}, l...), c.partial.String()), "\n")
}
