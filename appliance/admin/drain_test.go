package admin

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// drain_timeout is parsed like timeout: a Go duration, refused otherwise
// with an example.
func TestRotateDrainTimeout(t *testing.T) {
	t.Parallel()
	var req RotateRequest
	err := decode(strings.NewReader(`{"groups":[{"group":"w","image":"x"}],"drain_timeout":"soon"}`), &req)
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), `drain_timeout "soon": want a duration such as 5m`) {
		t.Errorf("drain_timeout soon: %v", err)
	}
	if err := decode(strings.NewReader(`{"groups":[{"group":"w","image":"x"}],"drain_timeout":"-1m"}`), &req); !errors.Is(err, ErrDecode) {
		t.Errorf("negative drain_timeout: %v, want refused", err)
	}
	req = RotateRequest{}
	if err := decode(strings.NewReader(`{"groups":[{"group":"w","image":"x"}],"timeout":"20m","drain_timeout":"90s"}`), &req); err != nil {
		t.Fatal(err)
	}
	if d, err := req.DrainDuration(); err != nil || d != 90*time.Second {
		t.Errorf("DrainDuration %v, %v; want 1m30s", d, err)
	}
	if d, err := (&RotateRequest{}).DrainDuration(); err != nil || d != 0 {
		t.Errorf("empty DrainDuration %v, %v; want 0 (the appliance's default)", d, err)
	}
}

// FuzzRotateDrainTimeout: an accepted request's drain timeout parses and
// is not negative.
func FuzzRotateDrainTimeout(f *testing.F) {
	f.Add(`5m`)
	f.Add(`-1s`)
	f.Add(`1e9h`)
	f.Add("\x1b[2J")
	f.Fuzz(func(t *testing.T, v string) {
		req := RotateRequest{Groups: []RotateGroup{{Group: "w", Image: "x"}}, DrainTimeout: v}
		if req.Validate() != nil {
			return
		}
		if d, err := req.DrainDuration(); err != nil || d < 0 {
			t.Fatalf("accepted drain_timeout %q: %v, %v", v, d, err)
		}
	})
}
