package enrolltest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/appliance/enroll/enrolltest"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/pkg/api"
)

var _ enrolltest.Server = (*enroll.Server)(nil)

// TestServeStopsAtCleanup serves a real enroll.Server, reaches it over TLS
// pinned to the CA Open made, and checks that the server is gone and the
// store closed once the (sub)test has ended.
func TestServeStopsAtCleanup(t *testing.T) {
	var url string
	var st *store.Store
	t.Run("serve", func(t *testing.T) {
		s, a := enrolltest.Open(t)
		st = s
		url = enrolltest.Serve(t, &enroll.Server{Store: s, CA: a, Hosts: []string{"127.0.0.1"}})
		if !strings.HasPrefix(url, "https://127.0.0.1:") {
			t.Fatalf("URL %q, want https://127.0.0.1:PORT", url)
		}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: a.Pool(), MinVersion: tls.VersionTLS13}}}
		resp, err := c.Get(url + api.PathPlan)
		if err != nil {
			t.Fatalf("GET %s: %v", api.PathPlan, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a client certificate: %s, want 401", api.PathPlan, resp.Status)
		}
	})
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "https://"), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after the test ended", url)
	}
	if err := st.View(func(*store.Tx) error { return nil }); err == nil {
		t.Error("the store is still open after the test ended")
	}
}

// recTB records what Serve reports at cleanup instead of failing the test.
type recTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recTB) Helper()                        {}
func (r *recTB) Cleanup(f func())               { r.cleanups = append(r.cleanups, f) }
func (r *recTB) Errorf(format string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(format, a...)) }

type failing struct{}

func (failing) Serve(ctx context.Context, l net.Listener) error {
	<-ctx.Done()
	l.Close()
	return errors.New("boom")
}

func TestServeReportsServeError(t *testing.T) {
	r := &recTB{TB: t}
	enrolltest.Serve(r, failing{})
	if len(r.cleanups) != 1 {
		t.Fatalf("%d cleanups registered, want 1", len(r.cleanups))
	}
	r.cleanups[0]()
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "boom") {
		t.Errorf("reported %q, want the error Serve returned", r.errs)
	}
}

func TestEvents(t *testing.T) {
	st, _ := enrolltest.Open(t)
	mac := "52:54:00:00:00:01"
	err := st.Update(func(tx *store.Tx) error {
		for _, k := range []string{"enroll", "report", "enroll"} {
			if err := tx.AppendEvent(store.Event{Time: time.Now(), MAC: mac, Kind: k}); err != nil {
				return err
			}
		}
		return tx.AppendEvent(store.Event{Time: time.Now(), MAC: "52:54:00:00:00:02", Kind: "enroll"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := enrolltest.Events(t, st, mac, "enroll"); got != 2 {
		t.Errorf("enroll events of %s: %d, want 2", mac, got)
	}
	if got := enrolltest.Events(t, st, "52:54:00:00:00:03", "enroll"); got != 0 {
		t.Errorf("events of an unseen MAC: %d, want 0", got)
	}
}
