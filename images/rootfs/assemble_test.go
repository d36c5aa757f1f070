package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/swarmboot/swarmboot/images/yml"
)

func kernelTar(t *testing.T) string {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "lib/modules/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "lib/modules/6.6.1/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "lib/modules/6.6.1/virtio.ko", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("mod"))
		}
	}
	tw.Close()
	return buf.String()
}

// testImages is a whole set of images for a yml: kernel, two init images,
// a multi-layer service image with whiteouts and a small tool image.
func testImages(t *testing.T) memSource {
	label := `{"binds":["/run:/run"],"capabilities":["CAP_NET_ADMIN"]}`
	return memSource{
		"test/kernel:1": image(t, v1.Config{}, layer(t,
			te{name: "kernel", data: "BZIMAGE"},
			te{name: "kernel.tar", data: kernelTar(t)},
			te{name: "ucode.cpio", data: "UCODE"},
			te{name: "README", data: "ignored"},
		)),
		"test/init:1": image(t, v1.Config{}, layer(t,
			te{name: "init", data: "#!/bin/sh\n", mode: 0o755},
			te{name: "etc/", mode: 0o755},
			te{name: "etc/issue", data: "one"},
			te{name: "etc/resolv.conf", data: "nameserver 1.1.1.1"},
			te{name: "dev/console", data: ""},
		)),
		"test/runc:1": image(t, v1.Config{}, layer(t,
			te{name: "usr/bin/runc", data: "RUNC", mode: 0o755},
			te{name: "etc/issue", data: "two"},
		)),
		"test/svc:1": image(t, v1.Config{Entrypoint: []string{"/bin/svc"}, Labels: map[string]string{yml.LabelKey: label}},
			layer(t,
				te{name: "etc/", mode: 0o755},
				te{name: "etc/gone", data: "x"},
				te{name: "etc/kept", data: "old"},
				te{name: "usr/", mode: 0o755},
				te{name: "usr/lib/", mode: 0o755},
				te{name: "usr/lib/old", data: "x"},
				te{name: "./opt/", mode: 0o700},
				te{name: "opt/sub/", mode: 0o755},
				te{name: "opt/sub/f", data: "f"},
			),
			layer(t,
				te{name: "etc/.wh.gone"},
				te{name: "usr/lib/new", data: "new"},
				te{name: "usr/lib/.wh..wh..opq"},
				te{name: "etc/kept", data: "newer"},
				te{name: "opt", data: "now a file"},
			),
			layer(t,
				te{name: "bin/svc", data: "SVC", mode: 0o755},
				te{name: "bin/svc-link", link: "bin/svc", hard: true},
				te{name: "bin/sh", link: "/bin/svc"},
			)),
		"test/tool:1": image(t, v1.Config{Cmd: []string{"/tool"}}, layer(t, te{name: "tool", data: "TOOL", mode: 0o755})),
	}
}

const testYML = `kernel:
  image: test/kernel:1
  cmdline: console=ttyS0
  ucode: ucode.cpio
init:
  - test/init:1
  - test/runc:1
onboot:
  - name: sysctl
    image: test/tool:1
  - name: format
    image: test/tool:1
    readonly: true
onshutdown:
  - name: bye
    image: test/tool:1
services:
  - name: svc
    image: test/svc:1
    binds.add: ["/var/lib/docker:/var/lib/docker"]
  - name: ro
    image: test/tool:1
    readonly: true
    uid: svc
volumes:
  - name: data
    image: test/tool:1
files:
  - path: etc/motd
    contents: "hi\n"
    mode: "0644"
    uid: svc
  - path: /root/.ssh/authorized_keys
    source: key.pub
    mode: "0600"
  - path: var/lib/docker
    directory: true
  - path: etc/link
    symlink: /etc/motd
  - path: etc/missing
    source: does-not-exist
    optional: true
  - path: etc/linuxkit.yml
    metadata: yaml
`

func loadTestYML(t *testing.T, body string) *yml.Config {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key.pub"), []byte("ssh-ed25519 AAAA test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "test.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := yml.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAssembleLayout(t *testing.T) {
	t.Parallel()
	c := loadTestYML(t, testYML)
	rec := newRecorder(t)
	res, err := Assemble(context.Background(), c, testImages(t), rec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Kernel) != "BZIMAGE" || string(res.Ucode) != "UCODE" || res.Cmdline != "console=ttyS0" {
		t.Errorf("result kernel=%q ucode=%q cmdline=%q", res.Kernel, res.Ucode, res.Cmdline)
	}
	if len(res.Images) != 5 || res.Images[0].Ref != "test/kernel:1" || !strings.HasPrefix(res.Images[0].Digest, "sha256:") {
		t.Errorf("images = %+v", res.Images)
	}
	// kernel: boot/ and the modules, not the kernel file itself
	rec.mustType("boot", fs.ModeDir)
	rec.mustFile("lib/modules/6.6.1/virtio.ko", "mod")
	rec.mustNot("kernel")
	rec.mustNot("README")
	// init: flattened, later image wins, LinuxKit fixups
	rec.mustFile("init", "#!/bin/sh\n")
	rec.mustFile("usr/bin/runc", "RUNC")
	rec.mustFile("etc/issue", "two")
	if n := rec.count("etc/issue"); n != 1 {
		t.Errorf("etc/issue written %d times", n)
	}
	if e, _ := rec.get("etc/resolv.conf"); e.h.Linkname != "/run/resolvconf/resolv.conf" {
		t.Errorf("init resolv.conf = %+v", e.h)
	}
	rec.mustNot("dev/console")
	rec.mustType("dev/pts", fs.ModeDir)
	rec.mustFile("etc/hosts", hostsFile)
	// containers
	for _, d := range []string{"containers/onboot/000-sysctl", "containers/onboot/001-format", "containers/onshutdown/000-bye", "containers/services/svc", "containers/services/ro"} {
		rec.mustType(d+"/config.json", 0)
		rec.mustType(d+"/runtime.json", 0)
	}
	rec.mustFile("containers/onboot/000-sysctl/lower/tool", "TOOL")
	rec.mustType("containers/onboot/000-sysctl/tmp", fs.ModeDir)
	rec.mustType("containers/onboot/000-sysctl/rootfs", fs.ModeDir)
	// same image again: not extracted twice, rootfs bound from the first copy
	rec.mustNot("containers/onboot/001-format/rootfs/tool")
	rec.mustNot("containers/onshutdown/000-bye/lower/tool")
	var rt yml.Runtime
	e, _ := rec.get("containers/onboot/001-format/runtime.json")
	if err := json.Unmarshal([]byte(e.data), &rt); err != nil {
		t.Fatal(err)
	}
	if m := (*rt.Mounts)[0]; m.Source != "/containers/onboot/000-sysctl/lower" || m.Destination != "/containers/onboot/001-format/rootfs" {
		t.Errorf("dup bind mount = %+v", m)
	}
	e, _ = rec.get("containers/services/svc/runtime.json")
	if err := json.Unmarshal([]byte(e.data), &rt); err != nil {
		t.Fatal(err)
	}
	if m := (*rt.Mounts)[2]; m.Type != "overlay" || m.Options[0] != "lowerdir=/containers/services/svc/lower" {
		t.Errorf("overlay mount = %+v", (*rt.Mounts))
	}
	var spec specs.Spec
	e, _ = rec.get("containers/services/svc/config.json")
	if err := json.Unmarshal([]byte(e.data), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Process.Args[0] != "/bin/svc" || spec.Process.Capabilities.Effective[0] != "CAP_NET_ADMIN" || len(spec.Mounts) != 7 {
		t.Errorf("svc config.json: args %v caps %v mounts %d", spec.Process.Args, spec.Process.Capabilities, len(spec.Mounts))
	}
	if !strings.HasPrefix(e.data, "{\n    \"ociVersion\"") {
		t.Errorf("config.json not indented like LinuxKit's: %.40q", e.data)
	}
	e, _ = rec.get("containers/services/ro/config.json")
	json.Unmarshal([]byte(e.data), &spec)
	if spec.Process.User.UID != 103 || !spec.Root.Readonly {
		t.Errorf("ro: uid %d readonly %v", spec.Process.User.UID, spec.Root.Readonly)
	}
	// whiteouts, opaque dirs, replaced dirs, hard links in the svc rootfs
	root := "containers/services/svc/lower/"
	rec.mustNot(root + "etc/gone")
	rec.mustFile(root+"etc/kept", "newer")
	rec.mustNot(root + "usr/lib/old")
	rec.mustFile(root+"usr/lib/new", "new")
	rec.mustFile(root+"opt", "now a file")
	rec.mustNot(root + "opt/sub/f")
	rec.mustType(root+"bin", fs.ModeDir)
	if e, _ := rec.get(root + "bin/svc-link"); !e.h.IsHardlink() || e.h.Linkname != root+"bin/svc" {
		t.Errorf("hard link = %+v", e.h)
	}
	rec.mustType(root+"bin/sh", fs.ModeSymlink)
	rec.mustFile(root+"etc/resolv.conf", resolvFile)
	// volume
	rec.mustFile("containers/volumes/data/lower/tool", "TOOL")
	rec.mustType("containers/volumes/data/merged", fs.ModeDir)
	// files
	rec.mustFile("etc/motd", "hi\n")
	if e, _ := rec.get("etc/motd"); e.h.Uid != 103 || e.h.Mode.Perm() != 0o644 {
		t.Errorf("motd header = %+v", e.h)
	}
	rec.mustFile("root/.ssh/authorized_keys", "ssh-ed25519 AAAA test\n")
	if e, _ := rec.get("root/.ssh"); e.h.Mode.Perm() != 0o700 {
		t.Errorf("root/.ssh mode %v", e.h.Mode)
	}
	rec.mustType("var/lib/docker", fs.ModeDir)
	rec.mustType("etc/link", fs.ModeSymlink)
	rec.mustNot("etc/missing")
	if e, _ := rec.get("etc/linuxkit.yml"); !strings.Contains(e.data, "image: test/svc:1") {
		t.Errorf("metadata = %q", e.data)
	}
	for _, r := range rec.entries {
		if !r.h.ModTime.Equal(time.Unix(0, 0)) {
			t.Fatalf("%s has time %v", r.h.Name, r.h.ModTime)
		}
	}
}

// stream serializes a whole assembly to bytes.
func stream(t *testing.T, c *yml.Config, src ImageSource, opt Options) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_, err := Assemble(context.Background(), c, src, WriterFunc(func(h *Header, r io.Reader) error {
		th := &tar.Header{Name: h.Name, Mode: int64(h.Mode.Perm()), Uid: h.Uid, Gid: h.Gid, Size: h.Size, Linkname: h.Linkname, ModTime: h.ModTime, Typeflag: tar.TypeReg}
		switch {
		case h.Mode.IsDir():
			th.Typeflag = tar.TypeDir
		case h.Mode&fs.ModeSymlink != 0:
			th.Typeflag = tar.TypeSymlink
		case h.IsHardlink():
			th.Typeflag = tar.TypeLink
		}
		if err := tw.WriteHeader(th); err != nil {
			return err
		}
		_, err := io.CopyN(tw, r, h.Size)
		return err
	}), opt)
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

func TestAssembleDeterministic(t *testing.T) {
	t.Parallel()
	c := loadTestYML(t, testYML)
	a := stream(t, c, testImages(t), Options{})
	b := stream(t, c, testImages(t), Options{})
	if !bytes.Equal(a, b) {
		t.Error("two assemblies of the same inputs differ")
	}
	later := stream(t, c, testImages(t), Options{ModTime: time.Unix(1700000000, 0)})
	if bytes.Equal(a, later) {
		t.Error("ModTime had no effect")
	}
}

func TestAssembleErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, body, want string }{
		{"missing image", "services:\n  - name: sshd\n    image: linuxkit/sshd:v1\n",
			`test.yml:2: services[0](sshd): image linuxkit/sshd:v1: not found in store; import it with swarmboot image import FILE`},
		{"missing init", "init:\n  - test/init:1\n  - nope:1\n", `test.yml:3: init[1]: image nope:1: not found`},
		{"no kernel file", "kernel:\n  image: test/tool:1\n", `test.yml:1: kernel: image test/tool:1 has no file /kernel; is it a kernel image?`},
		{"no kernel tar", "kernel:\n  image: test/kernel:1\n  tar: modules.tar\n", `has no /modules.tar; set kernel.tar: none`},
		{"bad uid", "files:\n  - path: a\n    contents: x\n    uid: nobody\n", `test.yml:2: files[0](a): uid: unknown user or group "nobody"`},
		{"missing source", "files:\n  - path: a\n    source: nothere\n", `test.yml:2: files[0](a): source: open`},
		{"bad label", "services:\n  - name: x\n    image: bad/label:1\n", `test.yml:2: services[0](x): image bad/label:1: label org.mobyproject.config:1: unknown key "bindz"`},
		{"escaping layer", "services:\n  - name: x\n    image: bad/escape:1\n", `entry "../../etc/passwd" leaves the image root`},
		{"unknown volume", "services:\n  - name: x\n    image: test/tool:1\n    binds: [\"vol:/data\"]\n", `test.yml:2: services[0](x): bind "vol:/data": no volume named "vol"`},
	}
	src := testImages(t)
	src["bad/label:1"] = image(t, v1.Config{Labels: map[string]string{yml.LabelKey: `{"bindz":[]}`}}, layer(t, te{name: "a", data: "a"}))
	src["bad/escape:1"] = image(t, v1.Config{}, layer(t, te{name: "../../etc/passwd", data: "root::0:0"}))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := loadTestYML(t, tc.body)
			_, err := Assemble(context.Background(), c, src, newRecorder(t), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant %q", err, tc.want)
			}
		})
	}
}

func TestSourceDenied(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "ca.key"), []byte("PRIVATE"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "innocent.pem")
	if err := os.Symlink(filepath.Join(data, "ca.key"), link); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relData, err := filepath.Rel(wd, data) // a relative --data-dir
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, deny string }{
		{filepath.Join(data, "ca.key"), data}, {link, data}, {filepath.Join(data, "ca.key"), relData},
	} {
		src := tc.src
		c := loadTestYML(t, "files:\n  - path: etc/x\n    source: "+src+"\n")
		rec := newRecorder(t)
		_, err := Assemble(context.Background(), c, testImages(t), rec, Options{DenySourceDirs: []string{tc.deny}})
		if err == nil || !strings.Contains(err.Error(), "which holds swarmboot's secrets") {
			t.Errorf("%s (deny %s): err = %v", src, tc.deny, err)
		}
		for _, e := range rec.entries {
			if strings.Contains(e.data, "PRIVATE") {
				t.Fatalf("secret written to %s", e.h.Name)
			}
		}
	}
}

func TestInitAPKDatabasesMerged(t *testing.T) {
	t.Parallel()
	src := memSource{
		"a/init:1": image(t, v1.Config{}, layer(t, te{name: "lib/apk/db/installed", data: "P:busybox"}, te{name: "init", data: "x"})),
		"a/runc:1": image(t, v1.Config{},
			layer(t, te{name: "lib/apk/db/installed", data: "P:old"}),
			layer(t, te{name: "lib/apk/db/installed", data: "P:runc"})),
		"a/gone:1": image(t, v1.Config{},
			layer(t, te{name: "lib/apk/db/installed", data: "P:whited-out"}),
			layer(t, te{name: "lib/apk/db/.wh.installed"})),
		"a/none:1": image(t, v1.Config{}, layer(t, te{name: "usr/bin/containerd", data: "c"})),
	}
	c := loadTestYML(t, "init:\n  - a/init:1\n  - a/runc:1\n  - a/gone:1\n  - a/none:1\n")
	rec := newRecorder(t)
	if _, err := Assemble(context.Background(), c, src, rec, Options{}); err != nil {
		t.Fatal(err)
	}
	rec.mustFile("lib/apk/db/installed", "P:busybox\n\nP:runc\n\n")
	if n := rec.count("lib/apk/db/installed"); n != 1 {
		t.Errorf("apk database written %d times", n)
	}
	// a single database is left as it is
	c = loadTestYML(t, "init:\n  - a/init:1\n  - a/none:1\n")
	rec = newRecorder(t)
	if _, err := Assemble(context.Background(), c, src, rec, Options{}); err != nil {
		t.Fatal(err)
	}
	rec.mustFile("lib/apk/db/installed", "P:busybox")
}
