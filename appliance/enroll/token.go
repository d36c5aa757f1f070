package enroll

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// DefaultTTL is how long a new enrollment token stays valid.
const DefaultTTL = 24 * time.Hour

// TokenFor names the machine a token is for: a VM swarmboot created (bound
// to its BIOS UUID, else its MAC), or any machine by MAC. BIOSUUID, when
// set, binds the token to that UUID as well.
type TokenFor struct {
	VM, MAC, BIOSUUID string
}

// NewToken makes a one-time enrollment token, stores only its hash and
// returns the token: the only time it exists in clear.
func NewToken(st *store.Store, f TokenFor, ttl time.Duration, now time.Time) (string, error) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if f.MAC != "" {
		hw, err := net.ParseMAC(f.MAC)
		if err != nil {
			return "", fmt.Errorf("--mac %q: %v", f.MAC, err)
		}
		f.MAC = hw.String()
	}
	if f.VM == "" && f.MAC == "" {
		return "", errors.New("name the machine: --vm NAME or --mac MAC")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	err := st.Update(func(tx *store.Tx) error {
		t := store.Token{Hash: store.HashToken(tok), VM: f.VM, MAC: f.MAC, BIOSUUID: f.BIOSUUID, Expires: now.Add(ttl)}
		if f.VM != "" {
			vm, err := tx.VM(f.VM)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no VM %q in the store (swarmboot apply creates VMs; for a machine swarmboot did not create use --mac)", f.VM)
			}
			if err != nil {
				return err
			}
			if t.BIOSUUID == "" {
				t.BIOSUUID = vm.BIOSUUID
			}
			if t.MAC == "" && t.BIOSUUID == "" {
				t.MAC = vm.MAC
			}
			if t.MAC == "" && t.BIOSUUID == "" {
				return fmt.Errorf("VM %q has neither a BIOS UUID nor a MAC recorded: give --mac or --uuid", f.VM)
			}
		} else if vm, err := tx.VMByMAC(f.MAC); err == nil {
			t.VM = vm.Name
		}
		if err := tx.PutToken(t); err != nil {
			return err
		}
		who := t.VM
		if who == "" {
			who = t.MAC
		}
		return tx.AppendEvent(store.Event{Time: now, MAC: t.MAC, VM: t.VM, Kind: string(timeline.Token),
			Detail: fmt.Sprintf("enrollment token for %s created, valid until %s", who, t.Expires.UTC().Format(time.RFC3339))})
	})
	if err != nil {
		return "", err
	}
	return tok, nil
}
