package store

import (
	"errors"
	"testing"
	"time"
)

func TestRotationRoundTrip(t *testing.T) {
	t.Parallel()
	s := open(t)
	err := s.View(func(tx *Tx) error {
		_, err := tx.Rotation()
		return err
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("no roll yet: err = %v, want ErrNotFound", err)
	}
	now := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	r := Rotation{ID: now.Format(time.RFC3339), State: RotationRunning, Started: now,
		Groups: []RotationGroup{{Name: "workers", Image: "worker", Version: "worker@1"}},
		Nodes:  []RotationNode{{VM: "w1", Group: "workers", Role: "worker", To: "worker@1", Step: "reset", Drained: true}}}
	if err := s.Update(func(tx *Tx) error { return tx.PutRotation(r) }); err != nil {
		t.Fatal(err)
	}
	r.State, r.Nodes[0].Step = RotationStopped, "boot"
	if err := s.Update(func(tx *Tx) error { return tx.PutRotation(r) }); err != nil {
		t.Fatal(err)
	}
	var got *Rotation
	if err := s.View(func(tx *Tx) error { var err error; got, err = tx.Rotation(); return err }); err != nil {
		t.Fatal(err)
	}
	if got.State != RotationStopped || len(got.Nodes) != 1 || got.Nodes[0].Step != "boot" || !got.Nodes[0].Drained ||
		!got.Started.Equal(now) || got.Groups[0].Version != "worker@1" {
		t.Errorf("read back %+v, want the second write", got)
	}
}
