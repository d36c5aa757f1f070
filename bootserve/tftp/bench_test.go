package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// BenchmarkTFTP sends the iPXE BIOS loader and a 32 MiB file to 50
// concurrent clients (pin/tftp's client, blksize 1468, in this process),
// once from this server and once from tftpd-hpa (in.tftpd, started here on
// loopback), and reports the ratio of their wall times (>1: we are faster;
// best of two interleaved runs each).
func BenchmarkTFTP(b *testing.B) {
	tftpd, err := exec.LookPath("in.tftpd")
	if err != nil {
		b.Skipf("tftpd-hpa not installed (in.tftpd): %v", err)
	}
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
				// Interleaved, best of two: the host is shared (2 cores).
				tOurs, tRef := time.Duration(1<<62), time.Duration(1<<62)
				for range 2 {
					tOurs = min(tOurs, storm(b, ours, tc.file, files[tc.file], 50))
					tRef = min(tRef, storm(b, ref, tc.file, files[tc.file], 50))
				}
				ratio := tRef.Seconds() / tOurs.Seconds()
				mb := float64(50*len(files[tc.file])) / (1 << 20)
				b.ReportMetric(tOurs.Seconds(), "s-ours")
				b.ReportMetric(tRef.Seconds(), "s-tftpd-hpa")
				b.ReportMetric(mb/tOurs.Seconds(), "MiB/s")
				b.ReportMetric(ratio, "x-vs-tftpd-hpa")
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
	cmd := exec.Command(bin, "--foreground", "--address", addr, "--secure", "--user", "root", root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if b.Failed() {
			b.Logf("in.tftpd output:\n%s", out.String())
		}
	})
	// Wait until it answers.
	for range 50 {
		if _, err := fetch(addr, "undionly.kpxe"); err == nil {
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("in.tftpd on %s does not answer:\n%s", addr, out.String())
	return ""
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
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := fetch(addr, name)
			if err == nil && got != int64(len(want)) {
				err = fmt.Errorf("got %d bytes, want %d", got, len(want))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		b.Errorf("%s from %s: %v", name, addr, err)
	}
	return d
}
