package yml

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var rlimitNames = map[string]bool{
	"RLIMIT_CPU": true, "RLIMIT_FSIZE": true, "RLIMIT_DATA": true, "RLIMIT_STACK": true,
	"RLIMIT_CORE": true, "RLIMIT_RSS": true, "RLIMIT_NPROC": true, "RLIMIT_NOFILE": true,
	"RLIMIT_MEMLOCK": true, "RLIMIT_AS": true, "RLIMIT_LOCKS": true, "RLIMIT_SIGPENDING": true,
	"RLIMIT_MSGQUEUE": true, "RLIMIT_NICE": true, "RLIMIT_RTPRIO": true, "RLIMIT_RTTIME": true,
}

// parseRlimit reads "nofile,1024,4096" (names with or without RLIMIT_,
// "unlimited" allowed).
func parseRlimit(s string) (specs.POSIXRlimit, error) {
	parts := strings.SplitN(s, ",", 3)
	if len(parts) != 3 {
		return specs.POSIXRlimit{}, fmt.Errorf("rlimit %q: want NAME,SOFT,HARD (e.g. nofile,1024,4096)", s)
	}
	typ := strings.ToUpper(strings.TrimSpace(parts[0]))
	if !strings.HasPrefix(typ, "RLIMIT_") {
		typ = "RLIMIT_" + typ
	}
	if !rlimitNames[typ] {
		return specs.POSIXRlimit{}, fmt.Errorf("rlimit %q: unknown limit %s", s, strings.TrimSpace(parts[0]))
	}
	var vals [2]uint64
	for i, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if strings.EqualFold(p, "unlimited") {
			vals[i] = ^uint64(0)
			continue
		}
		v, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return specs.POSIXRlimit{}, fmt.Errorf("rlimit %q: %q is not a number or \"unlimited\"", s, p)
		}
		vals[i] = v
	}
	return specs.POSIXRlimit{Type: typ, Soft: vals[0], Hard: vals[1]}, nil
}

// mergeRuntime overrides the label's runtime config field by field with
// the yml's; every field ends up set, as linuxkit/init expects.
func mergeRuntime(label, y *Runtime) Runtime {
	if label == nil {
		label = &Runtime{}
	}
	if y == nil {
		y = &Runtime{}
	}
	s := func(a, b *string) *string {
		v := pick(a, b, "")
		return &v
	}
	cg := pick(label.Cgroups, y.Cgroups, []string{})
	mounts := pick(label.Mounts, y.Mounts, []specs.Mount{})
	mkdir := pick(label.Mkdir, y.Mkdir, []string{})
	ifs := pick(label.Interfaces, y.Interfaces, []Interface{})
	return Runtime{
		Cgroups:    &cg,
		Mounts:     &mounts,
		Mkdir:      &mkdir,
		Interfaces: &ifs,
		BindNS: Namespaces{
			Cgroup: s(label.BindNS.Cgroup, y.BindNS.Cgroup),
			Ipc:    s(label.BindNS.Ipc, y.BindNS.Ipc),
			Mnt:    s(label.BindNS.Mnt, y.BindNS.Mnt),
			Net:    s(label.BindNS.Net, y.BindNS.Net),
			Pid:    s(label.BindNS.Pid, y.BindNS.Pid),
			User:   s(label.BindNS.User, y.BindNS.User),
			Uts:    s(label.BindNS.Uts, y.BindNS.Uts),
		},
		Namespace: s(label.Namespace, y.Namespace),
	}
}
