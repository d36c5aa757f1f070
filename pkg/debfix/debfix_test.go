package debfix

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func needApt(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: debfix needs a Debian system", tool)
		}
	}
}

func TestFirstDep(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"linux-image-6.1.0-28-amd64 (= 6.1.119-1)": "linux-image-6.1.0-28-amd64",
		"a-b (>= 1) | c, d":                        "a-b",
		"":                                         "",
		"Foo; rm -rf /":                            "",
		"linux-image-6.12.9+bpo-amd64 (= 6.12.9-1~bpo)": "linux-image-6.12.9+bpo-amd64",
	} {
		if got := firstDep(in); got != want {
			t.Errorf("firstDep(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFetchRejectsBadName(t *testing.T) {
	t.Parallel()
	if _, err := Fetch(context.Background(), "../etc/passwd"); err == nil {
		t.Fatal("Fetch accepted a path as a package name")
	}
}

func TestCacheDirEnv(t *testing.T) {
	t.Setenv("SWARMBOOT_FIXTURES", "/x/y")
	if got := CacheDir(); got != "/x/y" {
		t.Fatalf("CacheDir() = %q with $SWARMBOOT_FIXTURES=/x/y", got)
	}
}

// TestFetchConcurrent fetches one small package from several goroutines at
// once into an empty cache: the flock must leave exactly one .deb behind.
func TestFetchConcurrent(t *testing.T) {
	needApt(t)
	t.Setenv("SWARMBOOT_FIXTURES", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	debs := make([]string, 4)
	errs := make([]error, 4)
	for i := range debs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			debs[i], errs[i] = Fetch(ctx, "busybox-static")
		}()
	}
	wg.Wait()
	for i := range debs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if debs[i] != debs[0] {
			t.Fatalf("concurrent fetches disagree: %s vs %s", debs[i], debs[0])
		}
	}
	all, _ := filepath.Glob(filepath.Join(CacheDir(), "debs", "*"))
	if len(all) != 1 {
		t.Fatalf("cache holds %v, want one .deb", all)
	}
	pkg, err := Field(ctx, debs[0], "Package")
	if err != nil || pkg != "busybox-static" {
		t.Fatalf("Package field = %q, %v", pkg, err)
	}
	dir := t.TempDir()
	if err := Packages(ctx, dir, "busybox-static"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "busybox")); err != nil {
		t.Fatalf("Packages did not extract bin/busybox: %v", err)
	}
}

func TestBusybox(t *testing.T) {
	needApt(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bb, err := Busybox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, bb, "echo", "hello-from-busybox").Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello-from-busybox" {
		t.Fatalf("%s echo: %q, %v", bb, out, err)
	}
	if out, _ := exec.Command("file", bb).Output(); len(out) > 0 && !strings.Contains(string(out), "statically linked") {
		t.Errorf("%s is not static: %s", bb, out)
	}
}

func TestDebianKernel(t *testing.T) {
	needApt(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := DebianKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(k.Version, "-amd64") {
		t.Errorf("Version = %q, want a Debian amd64 kernel version", k.Version)
	}
	f, err := os.Open(k.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdr := make([]byte, 0x206)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		t.Errorf("%s has no Linux boot protocol header", k.Vmlinuz)
	}
	mods, _ := filepath.Glob(filepath.Join(k.Modules, "kernel", "drivers", "net", "virtio_net.ko*"))
	if len(mods) == 0 {
		t.Errorf("no virtio_net module under %s", k.Modules)
	}
	// A second call reuses the extraction.
	k2, err := DebianKernel(ctx)
	if err != nil || *k2 != *k {
		t.Fatalf("second DebianKernel = %+v, %v; want %+v", k2, err, k)
	}
}
