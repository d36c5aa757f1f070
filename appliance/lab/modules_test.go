package lab

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/pkg/debfix"
)

func TestResolveModules(t *testing.T) {
	needApt(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	k, err := debfix.DebianKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := OpenModules(k.Modules)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.sortedNames()) < 1000 {
		t.Errorf("only %d modules indexed", len(m.sortedNames()))
	}
	order, err := m.Resolve(EngineModules...)
	if err != nil {
		t.Fatal(err)
	}
	idx := func(name string) int {
		return slices.IndexFunc(order, func(p string) bool { return modName(p) == name })
	}
	for _, c := range [][2]string{
		{"crc32c_generic", "libcrc32c"}, {"libcrc32c", "nf_conntrack"}, {"nf_conntrack", "iptable_nat"},
		{"virtio_pci", "virtio_net"}, {"virtio", "virtio_net"}, {"jbd2", "ext4"}, {"x_tables", "ip_tables"},
	} {
		a, b := idx(c[0]), idx(c[1])
		if a < 0 || b < 0 || a > b {
			t.Errorf("%s (at %d) must load before %s (at %d): %v", c[0], a, c[1], b, order)
		}
	}
	if _, err := m.Resolve("no_such_module"); err == nil {
		t.Error("Resolve accepted an unknown module")
	}
	tr, err := m.Tree(k.Version, "nf_tables")
	if err != nil {
		t.Fatal(err)
	}
	dep := string(tr.Get("lib/modules/" + k.Version + "/modules.dep").Data)
	if !strings.Contains(dep, "kernel/net/netfilter/nf_tables.ko: kernel/lib/libcrc32c.ko") {
		t.Errorf("modules.dep:\n%s", dep)
	}
}
