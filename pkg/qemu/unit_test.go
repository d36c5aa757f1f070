package qemu

import (
	"context"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgs(t *testing.T) {
	t.Parallel()
	vm := &VM{dir: t.TempDir()}
	a, err := vm.args(Config{Kernel: "/k", Initrd: "/i", Append: "quiet", Tap: "tap0", MAC: "52:54:00:12:34:56", Boot: "n"})
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(a, " ")
	for _, want := range []string{"-accel tcg", "-m 512", "-append quiet console=ttyS0", "-initrd /i",
		"ifname=tap0,script=no", "mac=52:54:00:12:34:56", "-boot n", "etc/sercon-port", "-machine pc"} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q: %s", want, s)
		}
	}
	if strings.Contains(s, "kvm") {
		t.Errorf("args mention kvm: %s", s)
	}
	if strings.Contains(s, "romfile") {
		t.Errorf("the NIC's option ROM is dropped without NativePXE: %s", s)
	}
	a, err = vm.args(Config{Firmware: "uefi", Tap: "tap0", MAC: "52:54:00:12:34:57", NativePXE: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(a, " "); !slices.Contains(a, "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:57,romfile=") {
		t.Errorf("NativePXE: the NIC keeps its option ROM: %s", s)
	}
	a, err = vm.args(Config{Firmware: "uefi", MemoryMiB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	s = strings.Join(a, " ")
	for _, want := range []string{"-m 1024", "OVMF_CODE_4M.fd", vm.dir + "/OVMF_VARS.fd", "-nic none", "q35"} {
		if !strings.Contains(s, want) {
			t.Errorf("uefi args lack %q: %s", want, s)
		}
	}
	for _, bad := range []Config{{Firmware: "coreboot"}, {Initrd: "/i"}, {Kernel: "/a,b"}} {
		if _, err := vm.args(bad); err == nil {
			t.Errorf("args(%+v) accepted", bad)
		}
	}
	if slices.Contains(a, "-enable-kvm") {
		t.Error("KVM enabled")
	}
}

func TestConsoleWaitFor(t *testing.T) {
	t.Parallel()
	c := newConsole()
	r, w := io.Pipe()
	go c.copy(r, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		l, err := c.waitFor(ctx, regexp.MustCompile(`^MARK (\d+)$`), func() error { return nil })
		if err != nil {
			l = err.Error()
		}
		got <- l
	}()
	io.WriteString(w, "SeaBIOS\r\nboot")
	io.WriteString(w, "ing\r\nMARK 4")
	io.WriteString(w, "2\r\nafter\n")
	if l := <-got; l != "MARK 42" {
		t.Fatalf("waitFor = %q, want MARK 42", l)
	}
	// The last line without a newline counts once the output ends.
	io.WriteString(w, "Press Ctrl-B")
	w.Close()
	if l, err := c.waitFor(ctx, regexp.MustCompile(`Ctrl-B`), nil); err != nil || l != "Press Ctrl-B" {
		t.Fatalf("last line: %q, %v", l, err)
	}
	_, err := c.waitFor(ctx, regexp.MustCompile(`never`), func() error { return errors.New("exit status 1") })
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("after EOF: %v", err)
	}
	if !strings.HasPrefix(c.String(), "SeaBIOS\r\nbooting") {
		t.Fatalf("String() = %q", c.String())
	}
}

func TestSlotExclusive(t *testing.T) {
	slotDirOverride = t.TempDir()
	defer func() { slotDirOverride = "" }()
	t.Setenv(SlotsEnv, "2")
	ctx := context.Background()
	r1, err := AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := AcquireSlot(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third slot of 2: %v, want a timeout", err)
	}
	r1()
	r3, err := AcquireSlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2()
	r3()
}
