package tftp

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/swarmboot/swarmboot/pkg/benchref"
)

// BenchmarkTFTP sends the iPXE BIOS loader and a 32 MiB file to 50
// concurrent clients (pin/tftp's client, blksize 1468, in this process),
// once from this server and once from tftpd-hpa (in.tftpd, started here on
// loopback), and reports the ratio of their wall times (>1: we are faster;
// best of two interleaved runs each).
func BenchmarkTFTP(b *testing.B) {
	tftpd := benchref.Tool(b, "in.tftpd", "tftpd-hpa")
	root := b.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		b.Fatal(err)
	}
	big := make([]byte, 32<<20)
	_, _ = rand.Read(big)
	files := map[string][]byte{"big.bin": big}
	if ipxe, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe"); err == nil {
		files["undionly.kpxe"] = ipxe
	} else {
		ipxe := make([]byte, 70<<10)
		_, _ = rand.Read(ipxe)
		files["undionly.kpxe"] = ipxe
		b.Logf("no /usr/lib/ipxe/undionly.kpxe (apt-get install ipxe): using 70 KiB of random bytes")
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ours := startOurs(b, root)
	ref := startTftpd(b, tftpd, root)
	for _, tc := range []struct{ bench, file string }{{"ipxe-50clients", "undionly.kpxe"}, {"32MiB-50clients", "big.bin"}} {
		b.Run(tc.bench, func(b *testing.B) {
			for range b.N {
				tOurs, tRef, ratio := benchref.Compare(b, "tftpd-hpa",
					func() time.Duration { return storm(b, ours, tc.file, files[tc.file], 50) },
					func() time.Duration { return storm(b, ref, tc.file, files[tc.file], 50) })
				mb := float64(50*len(files[tc.file])) / (1 << 20)
				b.ReportMetric(mb/tOurs.Seconds(), "MiB/s")
				b.Logf("TFTP %s: ours %.2fs (%.0f MiB/s), tftpd-hpa %.2fs: %.2fx", tc.file, tOurs.Seconds(), mb/tOurs.Seconds(), tRef.Seconds(), ratio)
			}
		})
	}
}

func startOurs(b *testing.B, root string) string {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Root: root}).Serve(ctx, conn) }()
	b.Cleanup(func() { cancel(); <-done })
	return conn.LocalAddr().String()
}

func startTftpd(b *testing.B, bin, root string) string {
	// Pick a free port, then hand it to in.tftpd.
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	benchref.Start(b, exec.Command(bin, "--foreground", "--address", addr, "--secure", "--user", "root", root), func() error {
		_, err := fetch(addr, "undionly.kpxe")
		return err
	})
	return addr
}

func fetch(addr, name string) (int64, error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return 0, err
	}
	c.SetBlockSize(1468)
	c.SetTimeout(2 * time.Second)
	c.SetRetries(10)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return 0, err
	}
	return wt.WriteTo(io.Discard)
}

// storm runs n concurrent fetches of name and returns the wall time.
func storm(b *testing.B, addr, name string, want []byte, n int) time.Duration {
	return benchref.Storm(b, n, func() error {
		got, err := fetch(addr, name)
		if err == nil && got != int64(len(want)) {
			err = fmt.Errorf("got %d bytes, want %d", got, len(want))
		}
		if err != nil {
			return fmt.Errorf("%s from %s: %w", name, addr, err)
		}
		return nil
	})
}
