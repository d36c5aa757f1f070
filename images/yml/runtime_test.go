package yml

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func service(t *testing.T, body string) *Image {
	t.Helper()
	c, err := Parse("svc.yml", []byte("services:\n"+body))
	if err != nil {
		t.Fatal(err)
	}
	return c.Services[0]
}

func TestRuntimeConfigDefaults(t *testing.T) {
	t.Parallel()
	img := service(t, "  - name: getty\n    image: linuxkit/getty:v1\n")
	spec, rt, err := RuntimeConfig(img, ImageConfigLabel{}, v1.Config{Entrypoint: []string{"/sbin/getty"}, Cmd: []string{"-l"}, Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(spec.Process.Args, []string{"/sbin/getty", "-l"}) || spec.Process.Cwd != "/" || spec.Process.Env[0] != "PATH=/bin" {
		t.Errorf("process = %+v", spec.Process)
	}
	var dests []string
	for _, m := range spec.Mounts {
		dests = append(dests, m.Destination)
	}
	if strings.Join(dests, " ") != "/dev /dev/pts /proc /sys /sys/fs/cgroup" {
		t.Errorf("mounts = %v", dests)
	}
	// host net/ipc/uts, new pid, mount and cgroup namespaces
	var ns []string
	for _, n := range spec.Linux.Namespaces {
		ns = append(ns, string(n.Type)+"="+n.Path)
	}
	if strings.Join(ns, " ") != "pid= mount= cgroup=" {
		t.Errorf("namespaces = %v", ns)
	}
	if spec.Root.Path != "rootfs" || spec.Root.Readonly || spec.Version != specs.Version {
		t.Errorf("root = %+v", spec.Root)
	}
	if len(spec.Process.Capabilities.Bounding) != 0 {
		t.Errorf("caps = %+v", spec.Process.Capabilities)
	}
	j, err := json.Marshal(rt)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cgroups":[],"mounts":[],"mkdir":[],"interfaces":[],"bindNS":{"cgroup":"","ipc":"","mnt":"","net":"","pid":"","user":"","uts":""},"namespace":""}`
	if string(j) != want {
		t.Errorf("runtime.json = %s\nwant %s", j, want)
	}
}

func TestRuntimeConfigLabelAndOverrides(t *testing.T) {
	t.Parallel()
	label, err := ParseLabel(`{"binds":["/run:/run","/etc/resolv.conf:/etc/resolv.conf"],"capabilities":["CAP_SYS_ADMIN"],"net":"new","readonly":true,"command":["/label"],"cwd":"/l","runtime":{"mkdir":["/var/lib/x"]},"devices":[{"path":"/dev/kmsg","type":"c","major":1,"minor":11,"mode":"0644"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	img := service(t, `  - name: docker
    image: docker:27.3.1
    binds.add: ["/var/lib/docker:/var/lib/docker:rw,rshared", "/run:/run"]
    capabilities.add: [CAP_NET_ADMIN]
    ambient: [CAP_NET_RAW]
    command: ["/usr/bin/dockerd"]
    rlimits: ["nofile,1024,unlimited"]
    uid: sshd
    additionalGids: [docker, 7]
    tmpfs: ["/tmp:size=1m,mode=1777"]
    mounts:
      - source: proc
        destination: /hostproc
    sysctl:
      net.ipv4.ip_forward: "1"
`)
	ids := map[string]uint32{"sshd": 104, "docker": 105}
	spec, rt, err := RuntimeConfigIDs(img, label, v1.Config{Cmd: []string{"/image"}, WorkingDir: "/w"}, ids)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Process.Args[0] != "/usr/bin/dockerd" || spec.Process.Cwd != "/l" {
		t.Errorf("args %v cwd %s", spec.Process.Args, spec.Process.Cwd)
	}
	binds := map[string]string{}
	for _, m := range spec.Mounts {
		binds[m.Destination] = m.Source + " " + strings.Join(m.Options, ",") + " " + m.Type
	}
	if binds["/run"] != "/run rw,rbind,rshared bind" || binds["/var/lib/docker"] != "/var/lib/docker rw,rshared,rbind bind" ||
		binds["/etc/resolv.conf"] == "" || binds["/tmp"] != "tmpfs size=1m,mode=1777 tmpfs" || binds["/hostproc"] != "proc  proc" {
		t.Errorf("mounts = %v", binds)
	}
	if !strings.Contains(binds["/dev"], ",ro") || !spec.Root.Readonly {
		t.Errorf("readonly from label not applied: %v", binds["/dev"])
	}
	c := spec.Process.Capabilities
	if strings.Join(c.Effective, ",") != "CAP_SYS_ADMIN,CAP_NET_ADMIN" || strings.Join(c.Bounding, ",") != "CAP_NET_ADMIN,CAP_NET_RAW,CAP_SYS_ADMIN" {
		t.Errorf("caps = %+v", c)
	}
	if spec.Process.User.UID != 104 || !reflect.DeepEqual(spec.Process.User.AdditionalGids, []uint32{105, 7}) {
		t.Errorf("user = %+v", spec.Process.User)
	}
	if r := spec.Process.Rlimits[0]; r.Type != "RLIMIT_NOFILE" || r.Soft != 1024 || r.Hard != ^uint64(0) {
		t.Errorf("rlimit = %+v", r)
	}
	if spec.Linux.Namespaces[0].Type != specs.NetworkNamespace || spec.Linux.Namespaces[0].Path != "" {
		t.Errorf("net new namespace missing: %+v", spec.Linux.Namespaces)
	}
	if len(spec.Linux.Devices) != 1 || *spec.Linux.Devices[0].FileMode != 0o644 || len(spec.Linux.Resources.Devices) != 1 || *spec.Linux.Resources.Devices[0].Minor != 11 {
		t.Errorf("devices = %+v / %+v", spec.Linux.Devices, spec.Linux.Resources.Devices)
	}
	if spec.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || (*rt.Mkdir)[0] != "/var/lib/x" {
		t.Errorf("sysctl %v mkdir %v", spec.Linux.Sysctl, *rt.Mkdir)
	}

	// yml binds replace the label's entirely; "all" expands
	img2 := service(t, "  - name: x\n    image: x:1\n    binds: [\"/a:/a\"]\n    capabilities: [all]\n    readonly: false\n")
	spec2, _, err := RuntimeConfig(img2, label, v1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec2.Mounts {
		if m.Destination == "/run" {
			t.Errorf("label bind survived yml binds: %+v", m)
		}
	}
	if len(spec2.Process.Capabilities.Bounding) != len(allCaps) || spec2.Root.Readonly {
		t.Errorf("all caps %d readonly %v", len(spec2.Process.Capabilities.Bounding), spec2.Root.Readonly)
	}
}

func TestRuntimeConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ body, want string }{
		{"capabilities: [CAP_FLY]", `unknown capability "CAP_FLY"`},
		{"rlimits: [\"nofile,10\"]", `rlimit "nofile,10": want NAME,SOFT,HARD`},
		{"rlimits: [\"bogus,1,2\"]", `unknown limit bogus`},
		{"binds: [\"/a\"]", `bind "/a": want SRC:DEST`},
		{"uid: nobody", `uid: unknown user or group "nobody"`},
		{"mounts: [{destination: /x}]", `mount for destination "/x" is missing type`},
		{"devices: [{path: /dev/x, type: c, major: 1, minor: 2}]", `device /dev/x: mode "" is not an octal`},
		{"tmpfs: [\"/a:b:c\"]", `tmpfs "/a:b:c": too many ':'`},
	}
	for _, tc := range cases {
		img := service(t, "  - name: x\n    image: x:1\n    "+tc.body+"\n")
		_, _, err := RuntimeConfig(img, ImageConfigLabel{}, v1.Config{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "svc.yml:2: container x (image x:1): ") {
			t.Errorf("%s: err = %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestParseLabel(t *testing.T) {
	t.Parallel()
	if _, err := ParseLabel(`{"bindz":[]}`); err == nil || !strings.Contains(err.Error(), `unknown key "bindz"; did you mean "binds"?`) {
		t.Errorf("err = %v", err)
	}
	if _, err := ParseLabel(`{"name":"x"}`); err == nil || !strings.Contains(err.Error(), "name and image cannot be set") {
		t.Errorf("err = %v", err)
	}
	if l, err := ParseLabel(""); err != nil || l.Binds != nil {
		t.Errorf("empty label: %v", err)
	}
	if _, err := ParseLabel(`[1,2]`); err == nil {
		t.Error("a list label was accepted")
	}
}
