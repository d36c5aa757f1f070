// Package testlog is the log sink tests share: Buffer, a byte buffer that
// loggers, servers and child processes write to concurrently while the test
// reads it (a bytes.Buffer alone is a data race under -race). Only tests
// import it.
//
//	var logs testlog.Buffer
//	srv := &Server{Log: slog.New(slog.NewTextHandler(&logs, nil))}
//	…
//	if strings.Contains(logs.String(), token) { t.Error("token logged") }
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer safe for concurrent use by writers and readers.
// The zero value is empty and ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
