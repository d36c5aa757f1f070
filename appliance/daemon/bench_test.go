package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve"
	"github.com/swarmboot/swarmboot/bootserve/bootservetest"
	"github.com/swarmboot/swarmboot/bootserve/dhcp"
)

// scriptStorm fetches /boot/<mac>.ipxe n times from 16 clients and returns
// the elapsed time.
func scriptStorm(b *testing.B, base string, macs []string, n int) time.Duration {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	start := time.Now()
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				resp, err := hc.Get(base + "/boot/" + macs[i%len(macs)] + ".ipxe")
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %s", resp.Status)
					return
				}
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return d
}

// BenchmarkScript compares per-machine iPXE scripts answered from the store
// (a bbolt lookup by MAC, plus 100 machines' kernel-line tokens) with the
// same scripts from serve's static DirBooter table, the reference.
func BenchmarkScript(b *testing.B) {
	data, artifacts, ipxe := fixture(b)
	const machines, requests = 100, 4000
	macs := make([]string, machines)
	entries := map[string]bootserve.MachineEntry{}
	for i := range macs {
		macs[i] = fmt.Sprintf("52:54:00:00:%02x:%02x", i/256, i%256)
		entries[macs[i]] = bootserve.MachineEntry{Image: "lab"}
	}
	boot := func(booter bootserve.Booter, dir string) bootserve.Config {
		return bootserve.Config{DHCP: dhcp.ModeOff, ServerIP: net.IPv4(127, 0, 0, 1), IPXEDir: ipxe, Booter: booter,
			StateDir: dir, Artifacts: artifacts, HTTPAddr: bootservetest.FreeAddr(b), TFTPAddr: "127.0.0.1:0"}
	}
	d, err := New(Config{DataDir: data, Artifacts: artifacts, APIListener: listenLoopback(b), Boot: boot(nil, "")})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if err := d.Store().Update(func(tx *store.Tx) error {
		for i, mac := range macs {
			if err := tx.PutVM(store.VM{Name: fmt.Sprintf("w%d", i), MAC: mac, Image: "lab"}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for _, mac := range macs {
		if _, err := d.IssueToken(mac, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	ref, err := bootserve.New(boot(&bootserve.DirBooter{Dir: artifacts, Machines: entries}, filepath.Join(b.TempDir(), "ref")))
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Listen(); err != nil {
		b.Fatal(err)
	}
	if err := ref.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { d.Run(ctx) })
	wg.Go(func() { ref.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	scriptStorm(b, d.HTTPBase(), macs, 200) // warm both
	scriptStorm(b, ref.HTTPBase(), macs, 200)
	var ours, theirs time.Duration
	b.ResetTimer()
	for range b.N {
		ours += scriptStorm(b, d.HTTPBase(), macs, requests)
		theirs += scriptStorm(b, ref.HTTPBase(), macs, requests)
	}
	b.StopTimer()
	ratio := float64(ours) / float64(theirs)
	b.ReportMetric(float64(requests*b.N)/ours.Seconds(), "scripts/s")
	b.ReportMetric(ratio, "x-vs-dirbooter")
	b.Logf("%d scripts from 16 clients: store-backed %s, DirBooter %s: %.2fx the time", requests*b.N, ours, theirs, ratio)
}
