package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/swarmboot/swarmboot/appliance/store"
)

func TestTokenCreate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"--data-dir", dir, "token", "create", "--mac", "52:54:00:AA:BB:CC", "--ttl", "2h"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	tok := strings.TrimSpace(out.String())
	if len(tok) < 40 || strings.Contains(errb.String(), tok) {
		t.Fatalf("token %q (stderr %q)", tok, errb.String())
	}
	st, err := store.Open(store.DefaultPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	st.View(func(tx *store.Tx) error {
		rec, err := tx.TokenByHash(store.HashToken(tok))
		if err != nil || rec.MAC != "52:54:00:aa:bb:cc" || !rec.Spent.IsZero() {
			t.Errorf("stored token: %+v, %v", rec, err)
		}
		return nil
	})
	st.Close()
	raw, _ := readAll(store.DefaultPath(dir))
	if bytes.Contains(raw, []byte(tok)) {
		t.Error("the store file holds the token in clear")
	}
	out.Reset()
	errb.Reset()
	if code := Main(context.Background(), []string{"--data-dir", dir, "token", "create", "--vm", "nope"}, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), "--mac") {
		t.Errorf("unknown VM: exit %d, stderr %q", code, errb.String())
	}
	if out.Len() != 0 {
		t.Errorf("a refused create printed %q", out.String())
	}
}

func readAll(path string) ([]byte, error) { return os.ReadFile(path) }
