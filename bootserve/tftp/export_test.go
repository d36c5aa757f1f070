package tftp

import (
	"log/slog"
	"testing"

	"github.com/swarmboot/swarmboot/bootserve/internal/safefile"
)

func (s *Server) handlerForTest(tb testing.TB) (*handler, func()) {
	dir, err := safefile.Open(s.Root)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := newMetrics(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &handler{dir: dir, log: slog.New(slog.DiscardHandler), m: m}, func() { dir.Close() }
}
