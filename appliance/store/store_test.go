package store

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(DefaultPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestVMsRoundTripAndMACIndex(t *testing.T) {
	t.Parallel()
	s := open(t)
	now := time.Now().UTC().Truncate(time.Second)
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutVM(VM{Name: "tf-sw-2", Group: "w", MAC: "00:50:56:AA:BB:02", Created: now}); err != nil {
			return err
		}
		return tx.PutVM(VM{Name: "tf-sw-1", Group: "w", MAC: "00:50:56:aa:bb:01", BIOSUUID: "u1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Tx) error {
		vms, err := tx.VMs()
		if err != nil {
			return err
		}
		if len(vms) != 2 || vms[0].Name != "tf-sw-1" || vms[1].Name != "tf-sw-2" {
			t.Errorf("VMs() = %+v, want tf-sw-1, tf-sw-2", vms)
		}
		vm, err := tx.VMByMAC("00:50:56:aa:bb:02")
		if err != nil {
			return err
		}
		if vm.Name != "tf-sw-2" || !vm.Created.Equal(now) {
			t.Errorf("VMByMAC = %+v", vm)
		}
		if _, err := tx.VM("nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("VM(nope) err = %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Changing the MAC moves the index; deleting removes it.
	err = s.Update(func(tx *Tx) error {
		if err := tx.PutVM(VM{Name: "tf-sw-2", MAC: "00:50:56:aa:bb:99"}); err != nil {
			return err
		}
		if _, err := tx.VMByMAC("00:50:56:aa:bb:02"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old MAC still indexed: %v", err)
		}
		if err := tx.DeleteVM("tf-sw-2"); err != nil {
			return err
		}
		if _, err := tx.VMByMAC("00:50:56:aa:bb:99"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted VM still indexed: %v", err)
		}
		return tx.DeleteVM("tf-sw-2") // idempotent
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTokensHashedSpendOnce(t *testing.T) {
	t.Parallel()
	s := open(t)
	now := time.Now()
	h := HashToken("secret-token")
	other := HashToken("expired")
	err := s.Update(func(tx *Tx) error {
		if err := tx.PutToken(Token{Hash: h, VM: "tf-sw-1", BIOSUUID: "u", Expires: now.Add(time.Hour)}); err != nil {
			return err
		}
		if err := tx.PutToken(Token{Hash: HashToken("another VM's"), VM: "tf-sw-2", Expires: now.Add(time.Hour)}); err != nil {
			return err
		}
		return tx.PutToken(Token{Hash: other, VM: "tf-sw-1", Expires: now.Add(-time.Minute)})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *Tx) error {
		if err := tx.SpendToken(other, "k1", now); !errors.Is(err, ErrTokenExpired) {
			t.Errorf("spend expired: %v, want ErrTokenExpired", err)
		}
		if err := tx.SpendToken(h, "k1", now); err != nil {
			t.Errorf("first spend: %v", err)
		}
		if err := tx.SpendToken(h, "k1", now); err != nil {
			t.Errorf("same key again: %v", err)
		}
		if err := tx.SpendToken(h, "k2", now); !errors.Is(err, ErrTokenSpent) {
			t.Errorf("other key: %v, want ErrTokenSpent", err)
		}
		if err := tx.SpendToken(HashToken("unknown"), "k1", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown: %v, want ErrNotFound", err)
		}
		ts, err := tx.TokensForVM("tf-sw-1")
		if err != nil {
			return err
		}
		if len(ts) != 2 {
			t.Errorf("TokensForVM = %d tokens, want 2", len(ts))
		}
		if all, err := tx.Tokens(); err != nil || len(all) != 3 {
			t.Errorf("Tokens = %d tokens, %v; want 3", len(all), err)
		}
		got, err := tx.TokenByHash(h)
		if err != nil {
			return err
		}
		if got.Spent.IsZero() || got.SpentKey != "k1" {
			t.Errorf("token not marked spent: %+v", got)
		}
		return tx.DeleteTokensForVM("tf-sw-1")
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		if ts, _ := tx.TokensForVM("tf-sw-1"); len(ts) != 0 {
			t.Errorf("tokens left after delete: %d", len(ts))
		}
		if ts, _ := tx.Tokens(); len(ts) != 1 || ts[0].VM != "tf-sw-2" {
			t.Errorf("after deleting tf-sw-1's tokens: %+v, want tf-sw-2's only", ts)
		}
		return nil
	})
}

func TestEventsPerMACInOrder(t *testing.T) {
	t.Parallel()
	s := open(t)
	err := s.Update(func(tx *Tx) error {
		for i, k := range []string{"created", "dhcp", "enroll"} {
			if err := tx.AppendEvent(Event{MAC: "AA:00:00:00:00:01", Kind: k, Detail: string(rune('a' + i))}); err != nil {
				return err
			}
			if err := tx.AppendEvent(Event{MAC: "aa:00:00:00:00:0a", Kind: "other"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Tx) error {
		ev, err := tx.Events("aa:00:00:00:00:01")
		if err != nil {
			t.Fatal(err)
		}
		if len(ev) != 3 || ev[0].Kind != "created" || ev[2].Kind != "enroll" {
			t.Errorf("events = %+v", ev)
		}
		return nil
	})
}

func TestRollbackAndSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := s.Update(func(tx *Tx) error {
		if err := tx.PutVM(VM{Name: "x"}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update err = %v", err)
	}
	s.View(func(tx *Tx) error {
		if _, err := tx.VM("x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rolled-back write visible: %v", err)
		}
		if tx.Schema() != SchemaVersion {
			t.Errorf("schema = %d", tx.Schema())
		}
		return nil
	})
	s.Close()

	// A file from a newer swarmboot is refused with advice.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(btx *bolt.Tx) error { return btx.Bucket([]byte(bucketMeta)).Put(keySchema, []byte("99")) })
	db.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("opened a store with a newer schema")
	} else {
		t.Log(err)
	}
}
