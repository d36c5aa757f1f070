package dhcp

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/swarmboot/swarmboot/bootserve/internal/sockbuf"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// stormAnswered sends one PXE DISCOVER, waits until the server is stuck in
// its recorder (so it reads nothing more), sends n more DISCOVERs from
// other machines, lets the server go on and returns how many distinct
// DISCOVERs it answered.
func stormAnswered(t *testing.T, readBuffer, n int) int {
	t.Helper()
	gate, stuck := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cfg := testConfig(ModeProxy)
	cfg.Recorder = timeline.RecorderFunc(func(timeline.Event) {
		once.Do(func() { close(stuck) })
		<-gate
	})
	h := newHandler(t, cfg)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Handler: h, ReadBuffer: readBuffer}).Serve(ctx, conn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	defer once.Do(func() {}) // in case the server never got stuck
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := sockbuf.Grow(client, sockbuf.Default); err != nil {
		t.Fatal(err)
	}
	answered := map[dhcpv4.TransactionID]bool{}
	var mu sync.Mutex
	go func() {
		buf := make([]byte, 1500)
		for {
			k, _, err := client.ReadFrom(buf)
			if err != nil {
				return
			}
			if m, err := dhcpv4.FromBytes(buf[:k]); err == nil && m.MessageType() == dhcpv4.MessageTypeOffer {
				mu.Lock()
				answered[m.TransactionID] = true
				mu.Unlock()
			}
		}
	}()
	send := func(i int) {
		mac := net.HardwareAddr{0x02, 0x77, 0, 0, byte(i >> 8), byte(i)}
		if _, err := client.WriteTo(discover(t, mac, kinds["bios"]...).ToBytes(), conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(0)
	select {
	case <-stuck:
	case <-time.After(answerTimeout):
		t.Fatal("no DISCOVER reached the recorder")
	}
	for i := 1; i <= n; i++ {
		send(i)
	}
	close(gate)
	deadline := time.Now().Add(answerTimeout)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := len(answered)
		mu.Unlock()
		if got == n+1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	return len(answered)
}

// TestServerAbsorbsStorm: 400 machines powered on together send their
// DISCOVERs while the server is busy; every one is answered once it is
// free, none waits for a retransmission. (With Linux's default receive
// buffer, ReadBuffer -1, 167 of the 401 were.)
func TestServerAbsorbsStorm(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: growing socket buffers beyond net.core.rmem_max takes CAP_NET_ADMIN")
	}
	const n = 400
	if got := stormAnswered(t, 0, n); got != n+1 {
		t.Errorf("%d of %d DISCOVERs answered, want all", got, n+1)
	}
}
