package yml

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadFull(t *testing.T) {
	c, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Kernel.Image != "linuxkit/kernel:6.6.71" || c.Kernel.Binary != "bzImage" || *c.Kernel.Tar != "none" || *c.Kernel.UCode != "intel-ucode.cpio" {
		t.Errorf("kernel = %+v", c.Kernel)
	}
	if c.Kernel.Pos.Line != 2 {
		t.Errorf("kernel pos = %v", c.Kernel.Pos)
	}
	if got := strings.Join(c.Init, ","); got != "linuxkit/init:v1.2.0,linuxkit/runc:v1.2.0" {
		t.Errorf("init = %s", got)
	}
	if c.InitPos[1].Line != 10 {
		t.Errorf("init[1] pos = %v", c.InitPos[1])
	}
	if len(c.Onboot) != 2 || c.Onboot[1].Name != "format" || (*c.Onboot[1].Command)[2] != "DOCKER" {
		t.Errorf("onboot = %+v", c.Onboot)
	}
	if len(c.Onshutdown) != 1 || len(c.Services) != 2 {
		t.Fatalf("onshutdown %d services %d", len(c.Onshutdown), len(c.Services))
	}
	s := c.Services[0]
	if s.Pos.Line != 22 {
		t.Errorf("sshd pos = %v", s.Pos)
	}
	if s.Net != "host" || s.Ipc != "new" || *s.Readonly != true || *s.OOMScoreAdj != -500 {
		t.Errorf("sshd = %+v", s.ImageConfig)
	}
	if s.GID.Name != "sshd" || s.UID.Num != 0 || (*s.AdditionalGids)[1].Name != "docker" || (*s.AdditionalGids)[0].Num != 1 {
		t.Errorf("ids uid=%v gid=%v add=%v", s.UID, s.GID, *s.AdditionalGids)
	}
	if (*s.Devices)[0].Major != 5 || (*s.Mounts)[0].Type != "cgroup" || *s.Resources.Memory.Limit != 1073741824 {
		t.Errorf("devices/mounts/resources wrong")
	}
	if (*s.UIDMappings)[0].HostID != 1000 || (*s.Sysctl)["net.ipv4.ip_forward"] != "1" {
		t.Errorf("uidMappings/sysctl wrong")
	}
	if (*s.Runtime.Interfaces)[0].Peer != "veth1" || *s.Runtime.BindNS.Net != "/run/netns/sshd" || *s.Runtime.Namespace != "sshd" {
		t.Errorf("runtime = %+v", s.Runtime)
	}
	if len(c.Files) != 5 || *c.Files[0].Contents != "hello\n" || !c.Files[1].Directory || c.Files[4].Metadata != "yaml" {
		t.Errorf("files = %+v", c.Files)
	}
	if c.Files[2].Pos.Line != 101 {
		t.Errorf("files[2] pos = %v", c.Files[2].Pos)
	}
	if len(c.Volumes) != 1 || !c.Volumes[0].ReadOnly || c.Volumes[0].Platforms[0] != "linux/amd64" {
		t.Errorf("volumes = %+v", c.Volumes)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "testdata/full.yml:114: the trust section is ignored") {
		t.Errorf("warnings = %q", c.Warnings)
	}
	want := []string{"linuxkit/kernel:6.6.71", "linuxkit/init:v1.2.0", "linuxkit/runc:v1.2.0", "linuxkit/sysctl:v1.2.0",
		"linuxkit/format:v1.2.0", "busybox:1.36", "linuxkit/sshd:v1.2.0", "docker:27.3.1-dind", "alpine:3.20"}
	if got := ImageRefs(c); !reflect.DeepEqual(got, want) {
		t.Errorf("ImageRefs = %q", got)
	}
	ids := IDMap(c)
	if ids["sysctl"] != 100 || ids["shutdown"] != 102 || ids["docker"] != 104 {
		t.Errorf("IDMap = %v", ids)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c, err := Load("testdata/full.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("again.yml", out)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, out)
	}
	out2, err := Marshal(c2)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Errorf("round trip differs:\n%s\n---\n%s", out, out2)
	}
	if !strings.Contains(string(out), "capabilities.add:\n      - CAP_NET_ADMIN") || strings.Contains(string(out), "Pos") {
		t.Errorf("unexpected marshal output:\n%s", out)
	}
	clear := func(c *Config) {
		c.Warnings, c.InitPos, c.Kernel.Pos = nil, nil, Pos{}
		for _, sec := range [][]*Image{c.Onboot, c.Onshutdown, c.Services} {
			for _, i := range sec {
				i.Pos = Pos{}
			}
		}
		for i := range c.Files {
			c.Files[i].Pos = Pos{}
		}
		for _, v := range c.Volumes {
			v.Pos = Pos{}
		}
	}
	clear(c)
	clear(c2)
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("round trip changed the config")
	}
}

func writeYML(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadFiles(t *testing.T) {
	t.Parallel()
	// F stands for the file's path in want
	cases := []struct{ name, body, want string }{
		{"unknown top key", "kernal:\n  image: k:1\n", `F:1: unknown key "kernal"; did you mean "kernel"?`},
		{"unknown service key", "services:\n  - name: sshd\n    image: linuxkit/sshd:v1\n    capabilites: [all]\n",
			`F:4: unknown key "capabilites" in services[0](sshd); did you mean "capabilities"?`},
		{"unknown key listed", "kernel:\n  image: k:1\n  zzzzzz: 1\n",
			`F:3: unknown key "zzzzzz" in kernel; expected one of: binary, cmdline, image, tar, ucode`},
		{"wrong type list", "services:\n  - name: sshd\n    image: linuxkit/sshd:v1\n    binds: /dev:/dev\n",
			`F:4: services[0](sshd).binds: expected a list of strings, got a string ("/dev:/dev")`},
		{"wrong type bool", "onboot:\n  - name: a\n    image: a:1\n    readonly: yes\n",
			`F:4: onboot[0](a).readonly: expected true or false, got a string ("yes")`},
		{"int for string", "files:\n  - path: etc/x\n    contents: hi\n    mode: 0644\n",
			`F:4: files[0].mode: expected a string, got an integer (0644) (quote it: "0644")`},
		{"wrong type section", "services: sshd\n", `F:1: services: expected a list of mappings, got a string ("sshd")`},
		{"missing image", "services:\n  - name: sshd\n    net: host\n",
			`F:2: services[0](sshd): missing required key "image" (an image reference such as linuxkit/sshd:v1.0.0)`},
		{"missing name", "onboot:\n  - image: a:1\n", `F:2: onboot[0]: missing required key "name" (the container's name, e.g. name: sshd)`},
		{"duplicate service", "services:\n  - name: sshd\n    image: a:1\n  - name: getty\n    image: b:1\n  - name: sshd\n    image: c:1\n",
			`F:6: duplicate service name "sshd" (also at F:2); service names must be unique, they run side by side`},
		{"duplicate key", "kernel:\n  image: a:1\n  image: b:1\n", `F:3: kernel: duplicate key "image" (first at line 2)`},
		{"bad ref", "init:\n  - \"UPPER CASE\"\n", `F:2: init[0]: invalid image reference "UPPER CASE": could not parse reference: UPPER CASE`},
		{"bad name", "services:\n  - name: ../x\n    image: a:1\n", `F:2: services[0]: invalid name "../x": use letters, digits, '.', '_' and '-' (it becomes a directory name)`},
		{"file escapes", "files:\n  - path: ../../etc/passwd\n    contents: x\n", `F:2: files[0]: path "../../etc/passwd" contains ".."`},
		{"file two kinds", "files:\n  - path: a\n    contents: x\n    source: y\n", `F:2: files[0](a): directory, symlink, contents, source and metadata exclude each other; keep one`},
		{"file no kind", "files:\n  - path: a\n", `F:2: files[0](a): say what the file is: one of directory, symlink, contents, source or metadata`},
		{"bad mode", "files:\n  - path: a\n    contents: x\n    mode: \"rw\"\n", `F:2: files[0](a): mode "rw" is not an octal permission such as "0644"`},
		{"null field", "services:\n  - name: a\n    image: a:1\n    command:\n", `F:4: services[0](a).command: expected a list of strings, got nothing (null)`},
		{"kernel no image", "kernel:\n  cmdline: quiet\n", `F:1: kernel: missing required key "image" (the kernel image, e.g. linuxkit/kernel:6.6.71)`},
		{"bad yaml", "services:\n  - name: [\n", `F:2: invalid YAML: did not find expected node content`},
		{"not a mapping", "- a\n- b\n", `F:1: expected a mapping with the sections kernel, init, onboot, onshutdown, services, files, volumes, trust, x-swarmboot, got a list`},
		{"uid type", "services:\n  - name: a\n    image: a:1\n    uid: [1]\n", `F:4: services[0](a).uid: expected a number or a container name, got a list`},
		{"dup volume", "volumes:\n  - name: v\n  - name: v\n", `F:3: duplicate volume name "v" (also at F:2); volume names must be unique`},
		{"unknown key in spec type", "services:\n  - name: a\n    image: a:1\n    mounts:\n      - typ: bind\n", `F:5: unknown key "typ" in services[0](a).mounts[0]; did you mean "type"?`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeYML(t, "bad.yml", tc.body)
			_, err := Load(p)
			if err == nil {
				t.Fatalf("no error for:\n%s", tc.body)
			}
			if want := strings.ReplaceAll(tc.want, "F:", p+":"); err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a := writeYML(t, "a.yml", `kernel:
  image: linuxkit/kernel:6.6.71
  cmdline: console=ttyS0
init: [linuxkit/init:v1]
onboot:
  - name: sysctl
    image: linuxkit/sysctl:v1
services:
  - name: getty
    image: linuxkit/getty:v1
files:
  - path: etc/a
    contents: a
`)
	b := writeYML(t, "b.yml", `kernel:
  image: linuxkit/kernel:6.6.72
  tar: none
init: [linuxkit/runc:v1]
onboot:
  - name: sysctl
    image: linuxkit/sysctl:v2
services:
  - name: sshd
    image: linuxkit/sshd:v1
files:
  - path: etc/b
    contents: b
`)
	c, err := Load(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kernel.Image != "linuxkit/kernel:6.6.72" || c.Kernel.Cmdline != "console=ttyS0" || *c.Kernel.Tar != "none" {
		t.Errorf("kernel = %+v", c.Kernel)
	}
	if c.Kernel.Pos.File != b {
		t.Errorf("kernel pos %v, want from %s", c.Kernel.Pos, b)
	}
	if len(c.Init) != 2 || len(c.InitPos) != 2 || c.InitPos[1].File != b {
		t.Errorf("init = %v %v", c.Init, c.InitPos)
	}
	if len(c.Onboot) != 2 || c.Onboot[1].Image != "linuxkit/sysctl:v2" {
		t.Errorf("onboot appended: %d", len(c.Onboot))
	}
	if len(c.Services) != 2 || len(c.Files) != 2 || c.Files[1].Pos.File != b {
		t.Errorf("services %d files %d", len(c.Services), len(c.Files))
	}
	// duplicate service across files names both places
	d := writeYML(t, "d.yml", "services:\n  - name: getty\n    image: linuxkit/getty:v2\n")
	_, err = Load(a, d)
	if err == nil || err.Error() != d+`:2: duplicate service name "getty" (also at `+a+`:9); service names must be unique, they run side by side` {
		t.Errorf("err = %v", err)
	}
	if _, err := Load(); err == nil {
		t.Error("Load() without files did not fail")
	}
}

func TestEmptyAndNullSections(t *testing.T) {
	c, err := Parse("e.yml", []byte("onboot:\nservices:\n"))
	if err != nil || len(c.Onboot) != 0 {
		t.Fatalf("c=%v err=%v", c, err)
	}
	c, err = Parse("e.yml", nil)
	if err != nil || c == nil {
		t.Fatalf("empty: %v", err)
	}
}

func TestRecursiveAlias(t *testing.T) {
	t.Parallel()
	_, err := Parse("r.yml", []byte("init: &a [*a]\n"))
	if err == nil {
		t.Fatal("recursive alias accepted")
	}
	t.Log(err)
}

func TestSwarmbootExtension(t *testing.T) {
	t.Parallel()
	a := writeYML(t, "a.yml", "x-swarmboot:\n  agent: true\n")
	b := writeYML(t, "b.yml", "x-swarmboot:\n  agent: false\n")
	c, err := Load(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Swarmboot == nil || *c.Swarmboot.Agent {
		t.Errorf("agent: false from the second file not applied: %+v", c.Swarmboot)
	}
	if _, err := Parse("x.yml", []byte("x-swarmboot:\n  agnet: false\n")); err == nil || !strings.Contains(err.Error(), `did you mean "agent"?`) {
		t.Errorf("err = %v", err)
	}
}
