package rotate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// TestManagerQuorum: a single manager, or one of three with another down,
// is refused before anything is touched; --allow-quorum-loss rolls the
// single manager.
func TestManagerQuorum(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.add("m1", "managers", api.RoleManager, "old", oldV).leader = true
	r := w.roller()
	req := Request{Targets: []Target{{"managers", "new"}}, Timeout: 5 * time.Second}
	_, err := r.Run(context.Background(), req, nil)
	if !errors.Is(err, ErrQuorum) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "0 of 1 managers") || !strings.Contains(err.Error(), "--allow-quorum-loss") {
		t.Fatalf("single manager: %v, want a quorum refusal", err)
	}
	if len(w.callLog()) != 0 {
		t.Fatalf("refused roll touched nodes: %q", w.callLog())
	}
	req.AllowQuorumLoss = true
	if _, err := r.Run(context.Background(), req, nil); err != nil {
		t.Fatalf("single manager, quorum loss allowed: %v", err)
	}

	w3 := newWorld(t)
	w3.add("m1", "managers", api.RoleManager, "old", oldV)
	w3.add("m2", "managers", api.RoleManager, "old", oldV)
	w3.add("m3", "managers", api.RoleManager, "old", oldV).state = api.NodeDown
	_, err = w3.roller().Plan(context.Background(), Request{Targets: []Target{{"managers", "new"}}})
	if !errors.Is(err, ErrQuorum) || !strings.Contains(err.Error(), "down already: m3") {
		t.Errorf("one of three managers down: %v, want a quorum refusal naming m3", err)
	}
}

// TestPlanRefusals: what cannot be rolled is refused with what to do.
func TestPlanRefusals(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	workers(w, "w1")
	w.add("c1", "cdrom", api.RoleWorker, "docker.iso", oldV)
	w.add("p1", "pxeiso", api.RoleWorker, "old", oldV)
	if err := w.st.Update(func(tx *store.Tx) error {
		return tx.PutVM(store.VM{Name: "lonely", Group: "lonely", Role: api.RoleWorker, Image: "old", MAC: "52:54:00:00:00:99"})
	}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nover-kernel", "nover-initrd.img"} {
		if err := os.WriteFile(filepath.Join(w.dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := w.roller()
	r.Boot = func(g string) string {
		if g == "pxeiso" {
			return "iso"
		}
		return ""
	}
	for _, tc := range []struct {
		name string
		t    Target
		is   error
		want string
	}{
		{"iso image", Target{"cdrom", "new"}, ErrISO, "swarmboot push the new ISO"},
		{"iso group", Target{"pxeiso", "new"}, ErrISO, "boot: pxe"},
		{"no such group", Target{"nope", "new"}, ErrRefused, "swarmboot apply"},
		{"not built", Target{"workers", "newer"}, ErrRefused, "--name newer"},
		{"a path", Target{"workers", "out/new.iso"}, ErrRefused, "not a build name"},
		{"no version", Target{"workers", "nover"}, ErrRefused, "nover.version does not exist"},
		{"never enrolled", Target{"lonely", "new"}, ErrRefused, "no enrolled node"},
	} {
		_, err := r.Plan(context.Background(), Request{Targets: []Target{tc.t}})
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.is, tc.want)
		}
	}
	p, err := r.Plan(context.Background(), Request{Targets: []Target{{"workers", "new"}}})
	if err != nil || len(p.Nodes) != 1 || p.Nodes[0].Action != ActionRoll || p.Nodes[0].From != oldV || p.Nodes[0].To != newV {
		t.Fatalf("plan %+v, %v", p, err)
	}
	if l := p.Lines(); len(l) != 1 || !strings.Contains(l[0], "w1 (worker, group workers): "+oldV+" → "+newV) {
		t.Errorf("lines %q", l)
	}
	if len(w.callLog()) != 0 {
		t.Errorf("planning touched nodes: %q", w.callLog())
	}
}
