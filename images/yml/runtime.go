package yml

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"gopkg.in/yaml.v3"
)

// LabelKey is the image label holding an image's default container config.
const LabelKey = "org.mobyproject.config"

// ParseLabel decodes an org.mobyproject.config label (JSON or YAML) as
// strictly as the yml. An empty label is an empty config.
func ParseLabel(label string) (cfg ImageConfigLabel, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("label %s: cannot parse: %v", LabelKey, r)
		}
	}()
	if strings.TrimSpace(label) == "" {
		return cfg, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(label), &doc); err != nil {
		return cfg, fmt.Errorf("label %s: %v", LabelKey, err)
	}
	if len(doc.Content) == 0 {
		return cfg, nil
	}
	var img Image
	d := &decoder{file: "label " + LabelKey}
	if err := d.decode(doc.Content[0], reflect.ValueOf(&img).Elem(), ""); err != nil {
		return cfg, err
	}
	if img.Name != "" || img.Image != "" {
		return cfg, fmt.Errorf("label %s: name and image cannot be set in the label", LabelKey)
	}
	return img.ImageConfig, nil
}

// allCaps are the Linux capabilities by number (what "all" means).
var allCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// pick returns the yml value if set, else the label's, else def: a set yml
// field always wins, as in LinuxKit.
func pick[T any](label, yml *T, def T) T {
	if yml != nil {
		return *yml
	}
	if label != nil {
		return *label
	}
	return def
}

func firstNonEmpty(vals ...string) string {
	for i := len(vals) - 1; i >= 0; i-- {
		if vals[i] != "" {
			return vals[i]
		}
	}
	return ""
}

// mergeUnique appends b to a, leaving out repeats (LinuxKit's "*.add").
func mergeUnique(a, b *[]string) *[]string {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	var out []string
	seen := map[string]bool{}
	for _, s := range append(append([]string(nil), *a...), *b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return &out
}

// RuntimeConfig builds the OCI runtime spec (config.json) and the runtime
// config (runtime.json) for one container the way LinuxKit does: command,
// env and cwd default to the image config; everything else comes from the
// image's org.mobyproject.config label, overridden field by field by the yml.
// Named uids/gids other than "root" need RuntimeConfigIDs.
func RuntimeConfig(img *Image, label ImageConfigLabel, imgCfg v1.Config) (specs.Spec, Runtime, error) {
	return RuntimeConfigIDs(img, label, imgCfg, nil)
}

// RuntimeConfigIDs is RuntimeConfig with named ids resolved through ids (IDMap).
func RuntimeConfigIDs(img *Image, label ImageConfigLabel, imgCfg v1.Config, ids map[string]uint32) (specs.Spec, Runtime, error) {
	var oci specs.Spec
	y := &img.ImageConfig
	fail := func(format string, args ...any) (specs.Spec, Runtime, error) {
		return specs.Spec{}, Runtime{}, fmt.Errorf("%s: container %s (image %s): %s", img.Pos, img.Name, img.Image, fmt.Sprintf(format, args...))
	}

	args := pick(label.Command, y.Command, append(append([]string(nil), imgCfg.Entrypoint...), imgCfg.Cmd...))
	env := pick(label.Env, y.Env, imgCfg.Env)
	cwd := firstNonEmpty("/", imgCfg.WorkingDir, label.Cwd, y.Cwd)
	readonly := pick(label.Readonly, y.Readonly, false)

	devOpts := []string{"nosuid", "strictatime", "mode=755", "size=65536k"}
	sysOpts := []string{"nosuid", "noexec", "nodev"}
	if readonly {
		devOpts = append(devOpts, "ro")
		sysOpts = append(sysOpts, "ro")
	}
	mounts := map[string]specs.Mount{
		"/proc":          {Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "nodev", "noexec", "relatime"}},
		"/dev":           {Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: devOpts},
		"/dev/pts":       {Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		"/sys":           {Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: sysOpts},
		"/sys/fs/cgroup": {Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
	for _, t := range pick(label.Tmpfs, y.Tmpfs, nil) {
		parts := strings.Split(t, ":")
		if len(parts) > 2 {
			return fail("tmpfs %q: too many ':' (want DEST or DEST:OPT,OPT)", t)
		}
		var opts []string
		if len(parts) == 2 {
			opts = strings.Split(parts[1], ",")
		}
		mounts[parts[0]] = specs.Mount{Destination: parts[0], Type: "tmpfs", Source: "tmpfs", Options: opts}
	}
	for _, b := range pick(mergeUnique(label.Binds, y.BindsAdd), y.Binds, nil) {
		parts := strings.Split(b, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fail("bind %q: want SRC:DEST or SRC:DEST:OPT,OPT", b)
		}
		opts := []string{"rw", "rbind", "rshared"}
		if len(parts) == 3 {
			opts = append(strings.Split(parts[2], ","), "rbind")
		}
		mounts[parts[1]] = specs.Mount{Destination: parts[1], Type: "bind", Source: parts[0], Options: opts}
	}
	for _, m := range pick(label.Mounts, y.Mounts, nil) {
		tp, src, dest := m.Type, m.Source, m.Destination
		if tp == "" {
			switch src {
			case "mqueue", "devpts", "proc", "sysfs", "cgroup":
				tp = src
			}
		}
		if tp == "" && dest == "/dev" {
			tp = "tmpfs"
		}
		if tp == "" {
			return fail("mount for destination %q is missing type", dest)
		}
		if src == "" {
			src = tp
		}
		if dest == "" {
			dest = map[string]string{"proc": "/proc", "devpts": "/dev/pts", "sysfs": "/sys", "cgroup": "/sys/fs/cgroup", "mqueue": "/dev/mqueue"}[tp]
		}
		if dest == "" {
			return fail("mount of type %q is missing destination", tp)
		}
		mounts[dest] = specs.Mount{Destination: dest, Type: tp, Source: src, Options: m.Options}
	}
	mountList := make([]specs.Mount, 0, len(mounts))
	for _, m := range mounts {
		mountList = append(mountList, m)
	}
	sort.Slice(mountList, func(i, j int) bool { return mountList[i].Destination < mountList[j].Destination })

	var namespaces []specs.LinuxNamespace
	addNS := func(t specs.LinuxNamespaceType, v string, hostDefault bool) {
		if v == "" && hostDefault {
			v = "root"
		}
		if v == "host" || v == "root" {
			return
		}
		if v == "new" || v == "none" && t == specs.NetworkNamespace {
			v = ""
		}
		namespaces = append(namespaces, specs.LinuxNamespace{Type: t, Path: v})
	}
	addNS(specs.NetworkNamespace, firstNonEmpty(label.Net, y.Net), true)
	addNS(specs.IPCNamespace, firstNonEmpty(label.Ipc, y.Ipc), true)
	addNS(specs.UTSNamespace, firstNonEmpty(label.Uts, y.Uts), true)
	addNS(specs.PIDNamespace, firstNonEmpty(label.Pid, y.Pid), false)
	addNS(specs.UserNamespace, firstNonEmpty(label.Userns, y.Userns), true)
	namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.MountNamespace}, specs.LinuxNamespace{Type: specs.CgroupNamespace})

	known := map[string]bool{}
	for _, c := range allCaps {
		known[c] = true
	}
	expand := func(list []string) ([]string, error) {
		if len(list) == 1 {
			switch strings.ToLower(list[0]) {
			case "none":
				return []string{}, nil
			case "all":
				return append([]string(nil), allCaps...), nil
			}
		}
		for _, c := range list {
			if !known[c] {
				return nil, fmt.Errorf("unknown capability %q (names look like CAP_NET_ADMIN; or \"all\" / \"none\")", c)
			}
		}
		return list, nil
	}
	caps, err := expand(pick(mergeUnique(label.Capabilities, y.CapabilitiesAdd), y.Capabilities, []string{}))
	if err != nil {
		return fail("%v", err)
	}
	ambient, err := expand(pick(label.Ambient, y.Ambient, []string{}))
	if err != nil {
		return fail("%v", err)
	}
	boundSet := map[string]bool{}
	for _, c := range append(append([]string(nil), caps...), ambient...) {
		boundSet[c] = true
	}
	bounding := make([]string, 0, len(boundSet))
	for c := range boundSet {
		bounding = append(bounding, c)
	}
	sort.Strings(bounding)

	var rlimits []specs.POSIXRlimit
	for _, s := range pick(label.Rlimits, y.Rlimits, nil) {
		rl, err := parseRlimit(s)
		if err != nil {
			return fail("%v", err)
		}
		rlimits = append(rlimits, rl)
	}

	uid, err := Resolve(pickPtr(label.UID, y.UID), ids)
	if err != nil {
		return fail("uid: %v", err)
	}
	gid, err := Resolve(pickPtr(label.GID, y.GID), ids)
	if err != nil {
		return fail("gid: %v", err)
	}
	var groups []uint32
	for _, g := range pick(label.AdditionalGids, y.AdditionalGids, nil) {
		n, err := Resolve(&g, ids)
		if err != nil {
			return fail("additionalGids: %v", err)
		}
		groups = append(groups, n)
	}

	oci.Version = specs.Version
	oci.Process = &specs.Process{
		User: specs.User{UID: uid, GID: gid, AdditionalGids: groups},
		Args: args,
		Env:  env,
		Cwd:  cwd,
		Capabilities: &specs.LinuxCapabilities{
			Bounding:    bounding,
			Effective:   caps,
			Inheritable: bounding,
			Permitted:   bounding,
			Ambient:     ambient,
		},
		Rlimits:         rlimits,
		NoNewPrivileges: pick(label.NoNewPrivileges, y.NoNewPrivileges, false),
		OOMScoreAdj:     pickPtr(label.OOMScoreAdj, y.OOMScoreAdj),
	}
	oci.Root = &specs.Root{Path: "rootfs", Readonly: readonly}
	oci.Hostname = firstNonEmpty(label.Hostname, y.Hostname)
	oci.Mounts = mountList
	oci.Annotations = pick(label.Annotations, y.Annotations, map[string]string{})

	resources := pick(label.Resources, y.Resources, specs.LinuxResources{})
	resources.Devices = append([]specs.LinuxDeviceCgroup(nil), resources.Devices...)
	var devices []specs.LinuxDevice
	for _, dev := range pick(label.Devices, y.Devices, nil) {
		if dev.Path == "all" {
			resources.Devices = append(resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Access: "rwm"})
			continue
		}
		mode, err := strconv.ParseUint(dev.Mode, 8, 32)
		if err != nil {
			return fail("device %s: mode %q is not an octal permission such as \"0660\"", dev.Path, dev.Mode)
		}
		fm := os.FileMode(mode)
		major, minor := dev.Major, dev.Minor
		devices = append(devices, specs.LinuxDevice{Path: dev.Path, Type: dev.Type, Major: major, Minor: minor, FileMode: &fm})
		resources.Devices = append(resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: "rwm"})
	}
	oci.Linux = &specs.Linux{
		UIDMappings:       pick(label.UIDMappings, y.UIDMappings, nil),
		GIDMappings:       pick(label.GIDMappings, y.GIDMappings, nil),
		Sysctl:            pick(label.Sysctl, y.Sysctl, map[string]string{}),
		Resources:         &resources,
		CgroupsPath:       pick(label.CgroupsPath, y.CgroupsPath, ""),
		Namespaces:        namespaces,
		Devices:           devices,
		RootfsPropagation: pick(label.RootfsPropagation, y.RootfsPropagation, ""),
		MaskedPaths:       pick(label.MaskedPaths, y.MaskedPaths, nil),
		ReadonlyPaths:     pick(label.ReadonlyPaths, y.ReadonlyPaths, nil),
	}
	return oci, mergeRuntime(label.Runtime, y.Runtime), nil
}

func pickPtr[T any](label, yml *T) *T {
	if yml != nil {
		return yml
	}
	return label
}
