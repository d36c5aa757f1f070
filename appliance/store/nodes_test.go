package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestNodesAndRevocation(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	err = s.Update(func(tx *Tx) error {
		if err := tx.PutNode(Node{Name: "w1", KeyFingerprint: "k1", CertSerial: "aa", MACs: []string{"52:54:00:00:00:01"}}); err != nil {
			return err
		}
		// a renewal with a new key drops the old key index
		return tx.PutNode(Node{Name: "w1", KeyFingerprint: "k2", CertSerial: "bb"})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		if _, err := tx.NodeByKey("k1"); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("old key still finds the node: %v", err)
		}
		n, err := tx.NodeByKey("k2")
		if err != nil || n.Name != "w1" {
			return fmt.Errorf("NodeByKey(k2) = %v, %v", n, err)
		}
		if r, _ := tx.CertRevoked("bb"); r {
			return errors.New("unrevoked cert reported revoked")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.RevokeNode("w1", now) }); err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		n, _ := tx.Node("w1")
		r, _ := tx.CertRevoked("bb")
		if n.Revoked.IsZero() || !r {
			t.Errorf("revoke: node %v, cert revoked %v", n.Revoked, r)
		}
		ns, _ := tx.Nodes()
		if len(ns) != 1 {
			t.Errorf("Nodes() = %d, want 1", len(ns))
		}
		return nil
	})
}

func TestClaimSwarmInitOnce(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	winners := make([]string, 8)
	for i := range winners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Update(func(tx *Tx) error {
				w, err := tx.ClaimSwarmInit(fmt.Sprintf("m%d", i), time.Now())
				winners[i] = w
				return err
			})
		}()
	}
	wg.Wait()
	for _, w := range winners {
		if w == "" || w != winners[0] {
			t.Fatalf("winners differ: %v", winners)
		}
	}
}
