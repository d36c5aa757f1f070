package site

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `vcenter:
  url: https://vc.example/sdk
  user: swarmboot@vsphere.local
  thumbprint: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01"
datacenter: DC0
datastore: LocalDS_0
resource_pool: /DC0/host/DC0_C0/Resources
network: VM Network
folder: TERRAFORM/Linux/linuxkit-dev
groups:
  - name: managers
    pattern: tf-sw-m{n}
    count: 1
    role: manager
    image: out/docker.iso
  - name: workers
    pattern: tf-sw-{n}
    count: 3
    cpus: 4
    memory: 4GiB
    disk: 20
    guest_id: other5xLinux64Guest
    firmware: efi
    boot: pxe
`

func noEnv(string) string { return "" }

func TestParseGood(t *testing.T) {
	t.Parallel()
	s, err := Parse("/etc/swarmboot/swarmboot.yml", []byte(good), func(k string) string {
		return map[string]string{EnvPassword: "s3cret"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.VCenter.Password != "s3cret" || s.VCenter.User != "swarmboot@vsphere.local" || s.VCenter.Insecure {
		t.Errorf("vcenter = %+v", s.VCenter)
	}
	if len(s.Groups) != 2 {
		t.Fatalf("groups = %d", len(s.Groups))
	}
	m, w := s.Groups[0], s.Groups[1]
	if m.CPUs != 2 || m.MemoryMiB != 2048 || m.DiskGiB != 10 || m.Boot != "iso" || m.Firmware != "bios" || m.Role != "manager" {
		t.Errorf("manager defaults wrong: %+v", m)
	}
	if w.CPUs != 4 || w.MemoryMiB != 4096 || w.DiskGiB != 20 || w.Boot != "pxe" || w.Firmware != "efi" || w.GuestID != "other5xLinux64Guest" {
		t.Errorf("workers = %+v", w)
	}
	if got := w.VMName(3); got != "tf-sw-3" {
		t.Errorf("VMName(3) = %s", got)
	}
	if n, ok := w.Index("tf-sw-12"); !ok || n != 12 {
		t.Errorf("Index(tf-sw-12) = %d %v", n, ok)
	}
	for _, bad := range []string{"tf-sw-", "tf-sw-01", "tf-sw-0", "tf-sw-x", "tf-sw-m1"} {
		if _, ok := w.Index(bad); ok {
			t.Errorf("Index(%q) matched", bad)
		}
	}
	if p, onDS := s.ImagePath(&m); onDS || p != "/etc/swarmboot/out/docker.iso" {
		t.Errorf("ImagePath = %s %v", p, onDS)
	}
}

func TestGOVCEnvironment(t *testing.T) {
	t.Parallel()
	src := "datacenter: DC0\ndatastore: d\nnetwork: n\n"
	s, err := Parse("s.yml", []byte(src), func(k string) string {
		return map[string]string{"GOVC_URL": "admin:pw@vc.lab", "GOVC_INSECURE": "1"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	v := s.VCenter
	if v.URL != "https://vc.lab/sdk" || v.User != "admin" || v.Password != "pw" || !v.Insecure {
		t.Errorf("vcenter = %+v", v)
	}
	if strings.Contains(v.Redacted(), "pw") {
		t.Errorf("Redacted leaks the password: %s", v.Redacted())
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	t.Parallel()
	cases := []struct{ src, want string }{
		{"datacenter: DC0\ndatastore: d\nnetwork: n\nfolders: x\n", "s.yml:4: site: unknown key \"folders\""},
		{"datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - name: w\n    count: 2\n    boot: floppy\n", "s.yml:7: want one of iso, pxe"},
		{"datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - name: w\n    count: many\n", "s.yml:6: want a whole number"},
		{"datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - name: w\n    count: 1\n    boot: pxe\n    memory: 1.5\n", "s.yml:8: \"1.5\" is not a whole number of MiB"},
		{"datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - name: w\n    count: 1\n", "s.yml:5: group w: boot: iso needs image"},
		{"datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - name: w\n    pattern: vm\n    count: 1\n    boot: pxe\n", "must contain {n}"},
		{"datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - {name: a, pattern: \"x{n}\", count: 2, boot: pxe}\n  - {name: b, pattern: \"x{n}\", count: 1, boot: pxe}\n", "also made by group a"},
		{"datacenter: DC0\ndatastore: d\n", "s.yml:1: network is missing"},
		{"vcenter:\n  url: https://u:p@vc/sdk\ndatacenter: a\ndatastore: b\nnetwork: c\n", "not in the URL"},
		{"vcenter:\n  insecure: yes please\ndatacenter: a\ndatastore: b\nnetwork: c\n", "s.yml:2: want true or false"},
		{"datacenter: a\ndatacenter: b\ndatastore: b\nnetwork: c\n", "s.yml:2: site: key \"datacenter\" given twice"},
		{"- a\n- b\n", "s.yml:1: site must be a mapping"},
		{"datacenter: [\n", "s.yml:"},
		{"", "empty site file"},
	}
	for _, c := range cases {
		_, err := Parse("s.yml", []byte(c.src), noEnv)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", c.src, err, c.want)
		}
	}
}

func TestLoadMissingFileSaysWhatToDo(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "swarmboot.yml"))
	if err == nil || !strings.Contains(err.Error(), "--simulate") {
		t.Errorf("Load(missing) = %v", err)
	}
	p := filepath.Join(t.TempDir(), "swarmboot.yml")
	os.WriteFile(p, []byte(good), 0o600)
	if s, err := Load(p); err != nil || s.Path != p {
		t.Errorf("Load(good) = %v, %v", s, err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("datacenter: DC0\ndatastore: d\nnetwork: n\ngroups:\n  - {name: a, count: 2, boot: pxe, memory: 2G}\n"))
	f.Add([]byte("groups: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("f.yml", data, noEnv)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, g := range s.Groups {
			if g.Count < 0 || g.Count > MaxCount || g.CPUs < 1 || g.MemoryMiB < 1 || g.DiskGiB < 1 {
				t.Fatalf("accepted out-of-range group %+v", g)
			}
			if g.Count > 0 {
				if n, ok := g.Index(g.VMName(g.Count)); !ok || n != g.Count {
					t.Fatalf("Index(VMName(%d)) = %d,%v for pattern %q", g.Count, n, ok, g.Pattern)
				}
			}
		}
	})
}

func TestImagePathBuildName(t *testing.T) {
	t.Parallel()
	src := "datacenter: DC0\ndatastore: d\nnetwork: n\nartifacts: /srv/builds\n" +
		"groups:\n  - {name: w, pattern: \"w-{n}\", count: 1, boot: iso, image: worker}\n" +
		"  - {name: f, pattern: \"f-{n}\", count: 1, boot: iso, image: isos/docker.iso}\n" +
		"  - {name: d, pattern: \"d-{n}\", count: 1, boot: iso, image: \"[ds1] swarmboot/x.iso\"}\n"
	s, err := Parse("/etc/swarmboot/site.yml", []byte(src), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"w": "/srv/builds/worker.iso",         // a build name: the artifacts dir
		"f": "/etc/swarmboot/isos/docker.iso", // a relative file: next to the site file
		"d": "[ds1] swarmboot/x.iso",          // already on the datastore
	} {
		if p, _ := s.ImagePath(s.Group(name)); p != want {
			t.Errorf("group %s: ImagePath = %s, want %s", name, p, want)
		}
	}
	s.Artifacts = ""
	if p, _ := s.ImagePath(s.Group("w")); p != "/etc/swarmboot/out/worker.iso" {
		t.Errorf("default artifacts dir: ImagePath = %s", p)
	}
	for img, want := range map[string]bool{"worker": true, "worker.iso": false, "out/worker": false, "[ds] a.iso": false, "": false} {
		if IsBuildName(img) != want {
			t.Errorf("IsBuildName(%q) = %v", img, !want)
		}
	}
}
