package store

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"time"
)

const bucketTokens = "tokens"

// Token is a one-time enrollment token as stored: only its SHA-256 hash,
// never the token itself.
type Token struct {
	Hash     [32]byte  `json:"hash"`
	VM       string    `json:"vm"`
	BIOSUUID string    `json:"biosUUID"`
	MAC      string    `json:"mac"`
	Expires  time.Time `json:"expires"`
	Spent    time.Time `json:"spent"`    // zero while unspent
	SpentKey string    `json:"spentKey"` // fingerprint of the key it was spent for
}

// HashToken is the hash under which a token is stored.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// PutToken inserts or replaces a token record.
func (tx *Tx) PutToken(t Token) error {
	t.MAC = NormalizeMAC(t.MAC)
	b, err := tx.bucket(bucketTokens)
	if err != nil {
		return err
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return b.Put(t.Hash[:], data)
}

// TokenByHash returns the token stored under h, or ErrNotFound.
func (tx *Tx) TokenByHash(h [32]byte) (*Token, error) {
	b, err := tx.bucket(bucketTokens)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	data := b.Get(h[:])
	if data == nil {
		return nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	var t Token
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("token: corrupt record: %w", err)
	}
	return &t, nil
}

// TokensForVM returns every token issued for the VM named vm.
func (tx *Tx) TokensForVM(vm string) ([]Token, error) {
	return tx.tokens(func(t *Token) bool { return t.VM == vm })
}

// Tokens returns every token in one pass, for callers that look at many
// VMs (TokensForVM reads them all each time).
func (tx *Tx) Tokens() ([]Token, error) {
	return tx.tokens(func(*Token) bool { return true })
}

func (tx *Tx) tokens(keep func(*Token) bool) ([]Token, error) {
	b, err := tx.bucket(bucketTokens)
	if err != nil || b == nil {
		return nil, err
	}
	var out []Token
	err = b.ForEach(func(_, v []byte) error {
		var t Token
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("token: corrupt record: %w", err)
		}
		if keep(&t) {
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// DeleteToken removes the token stored under h; a missing one is no error.
func (tx *Tx) DeleteToken(h [32]byte) error {
	b, err := tx.bucket(bucketTokens)
	if err != nil {
		return err
	}
	return b.Delete(h[:])
}

// DeleteTokensForVM removes every token issued for the VM named vm.
func (tx *Tx) DeleteTokensForVM(vm string) error {
	ts, err := tx.TokensForVM(vm)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := tx.DeleteToken(t.Hash); err != nil {
			return err
		}
	}
	return nil
}

// SpendToken marks the token stored under h as spent for the key with
// fingerprint keyFingerprint at now. It fails with ErrNotFound, with
// ErrTokenExpired when now is past its expiry, and with ErrTokenSpent when
// it was already spent for another key. Spending it again for the same key
// succeeds (a retried enrollment).
func (tx *Tx) SpendToken(h [32]byte, keyFingerprint string, now time.Time) error {
	t, err := tx.TokenByHash(h)
	if err != nil {
		return err
	}
	if !t.Spent.IsZero() {
		if t.SpentKey == keyFingerprint {
			return nil
		}
		return fmt.Errorf("token for vm %s: %w", t.VM, ErrTokenSpent)
	}
	if !t.Expires.IsZero() && now.After(t.Expires) {
		return fmt.Errorf("token for vm %s (expired %s): %w", t.VM, t.Expires.UTC().Format(time.RFC3339), ErrTokenExpired)
	}
	t.Spent = now
	t.SpentKey = keyFingerprint
	return tx.PutToken(*t)
}
