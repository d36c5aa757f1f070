package admin

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
)

// fakeRotator plays a roll: two progress lines apart by longer than a
// plain call's client timeout would allow in a real roll (here: a pause),
// then the End line.
type fakeRotator struct {
	mu      sync.Mutex
	running bool
	pause   time.Duration
	got     []RotateRequest
}

func (f *fakeRotator) PlanRotation(_ context.Context, req RotateRequest) ([]string, error) {
	if req.Groups[0].Image == "nope" {
		return nil, errors.New("rotate: refused: group workers: image nope has no nope-kernel")
	}
	return []string{"1. w1 (worker, group workers): drain, reset, activate"}, nil
}

func (f *fakeRotator) StartRotation(_ context.Context, req RotateRequest) (<-chan RotateLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running {
		return nil, ErrRotationRunning
	}
	f.running = true
	f.got = append(f.got, req)
	ch := make(chan RotateLine, 4)
	go func() {
		ch <- RotateLine{VM: "w1", Step: "drain", Message: "draining"}
		time.Sleep(f.pause)
		ch <- RotateLine{VM: "w1", Step: "done", Message: "on new"}
		ch <- RotateLine{Step: "done", End: true, State: store.RotationDone}
		close(ch)
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
	}()
	return ch, nil
}

func (f *fakeRotator) RotationRunning() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// TestRotateOverSocket: a dry run answers the plan, a roll streams its
// lines to the End line (for longer than the server's call timeouts), a refusal is one clear error, a second roll while
// one runs is ErrRotationRunning, and the status reads the store.
func TestRotateOverSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, _ := enrolltest.Open(t)
	fr := &fakeRotator{pause: 300 * time.Millisecond}
	sock := dir + "/" + SocketName
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &Server{Ops: &Ops{Store: st, Rotator: fr}, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()
	c := NewClient(sock)
	defer c.CloseIdle()
	req := RotateRequest{Groups: []RotateGroup{{Group: "workers", Image: "new"}}, Timeout: "10m"}

	lines, err := c.PlanRotation(ctx, req)
	if err != nil || len(lines) != 1 || !strings.Contains(lines[0], "w1") {
		t.Fatalf("dry run: %q, %v", lines, err)
	}
	bad := req
	bad.Groups = []RotateGroup{{Group: "workers", Image: "nope"}}
	if _, err := c.PlanRotation(ctx, bad); err == nil || !strings.Contains(err.Error(), "nope-kernel") || strings.Contains(err.Error(), "admin socket") {
		t.Errorf("refused dry run: %v, want the refusal as it is", err)
	}
	if _, err := c.Rotate(ctx, RotateRequest{}, func(RotateLine) {}); err == nil || !strings.Contains(err.Error(), "name the groups") {
		t.Errorf("empty roll: %v", err)
	}

	var got []RotateLine
	end, err := c.Rotate(ctx, req, func(l RotateLine) {
		got = append(got, l)
		if len(got) == 1 {
			// While the first roll runs, a second is refused.
			if _, err := c.Rotate(ctx, req, func(RotateLine) {}); !errors.Is(err, ErrRotationRunning) {
				t.Errorf("second roll: %v, want ErrRotationRunning", err)
			}
			if s, err := c.Rotation(ctx); err != nil || !s.Running {
				t.Errorf("status during the roll: %+v, %v; want running", s, err)
			}
		}
	})
	if err != nil || end == nil || end.State != store.RotationDone || len(got) != 3 || got[1].Step != "done" {
		t.Fatalf("roll: end %+v, %v, lines %+v", end, err, got)
	}
	if len(fr.got) != 1 || fr.got[0].DryRun || fr.got[0].Timeout != "10m" {
		t.Errorf("rotator got %+v", fr.got)
	}

	if s, err := c.Rotation(ctx); err != nil || s.Rotation != nil || s.Running {
		t.Errorf("status with no roll recorded: %+v, %v", s, err)
	}
	rec := store.Rotation{ID: "r1", State: store.RotationStopped, Message: "w2: timed out"}
	if err := st.Update(func(tx *store.Tx) error { return tx.PutRotation(rec) }); err != nil {
		t.Fatal(err)
	}
	if s, err := c.Rotation(ctx); err != nil || s.Rotation == nil || s.Rotation.State != store.RotationStopped || s.Rotation.Message != rec.Message {
		t.Errorf("status: %+v, %v; want the stored stopped roll", s, err)
	}
}

func TestRotateRequestRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, want string }{
		{"no groups", `{"groups":[]}`, "name the groups"},
		{"no image", `{"groups":[{"group":"workers"}]}`, "image to roll"},
		{"control", `{"groups":[{"group":"w\u001b","image":"x"}]}`, "control"},
		{"timeout", `{"groups":[{"group":"w","image":"x"}],"timeout":"soon"}`, "want a duration"},
		{"unknown", `{"groups":[{"group":"w","image":"x"}],"force":true}`, "unknown field"},
		{"many", `{"groups":[` + strings.Repeat(`{"group":"w","image":"x"},`, maxGroups) + `{"group":"w","image":"x"}]}`, "more than"},
	} {
		var req RotateRequest
		if err := decode(strings.NewReader(tc.body), &req); !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzRotateRequest: what the decoder accepts is within bounds.
func FuzzRotateRequest(f *testing.F) {
	for _, s := range []string{`{"groups":[{"group":"workers","image":"worker"}],"timeout":"15m"}`,
		`{"groups":[{"group":"a","image":"b"}],"dry_run":true,"allow_quorum_loss":true}`, `{"groups":null}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ok := fuzzDecode[RotateRequest](t, body)
		if !ok {
			return
		}
		if len(req.Groups) == 0 || len(req.Groups) > maxGroups {
			t.Fatalf("accepted %d groups", len(req.Groups))
		}
		for _, g := range req.Groups {
			if g.Group == "" || g.Image == "" || len(g.Group) > maxName || strings.ContainsAny(g.Group+g.Image, "\x00\n\x1b") {
				t.Fatalf("accepted group %+v", g)
			}
		}
		if d, err := req.Duration(); err != nil || d < 0 {
			t.Fatalf("accepted timeout %q", req.Timeout)
		}
	})
}
