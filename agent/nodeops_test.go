package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// fakeNodes adds the node endpoints to a fakeDocker's mux: w1id exists
// at version 9, everything else is unknown.
type fakeNodes struct {
	mu           sync.Mutex
	availability string
	version      string // the version the last update named
	removed      []string
}

func (f *fakeNodes) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1.41/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.unknown(w, r) {
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ID": "w1id", "Version": map[string]int{"Index": 9},
			"Spec": map[string]any{"Role": "worker", "Availability": f.availability, "Labels": map[string]string{"keep": "me"}}})
	})
	mux.HandleFunc("POST /v1.41/nodes/{id}/update", func(w http.ResponseWriter, r *http.Request) {
		var spec struct {
			Availability string
			Labels       map[string]string
		}
		json.NewDecoder(r.Body).Decode(&spec)
		f.mu.Lock()
		defer f.mu.Unlock()
		if spec.Labels["keep"] != "me" {
			w.WriteHeader(http.StatusBadRequest) // the spec must go back whole
			return
		}
		f.availability, f.version = spec.Availability, r.URL.Query().Get("version")
	})
	mux.HandleFunc("DELETE /v1.41/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.unknown(w, r) {
			return
		}
		f.removed = append(f.removed, r.PathValue("id")+" force="+r.URL.Query().Get("force"))
	})
}

// unknown answers Docker's 404 for any node but w1id, and says so.
func (*fakeNodes) unknown(w http.ResponseWriter, r *http.Request) bool {
	if id := r.PathValue("id"); id != "w1id" {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"message": "node " + id + " not found"})
		return true
	}
	return false
}

// An appliance answering the first report with operations gets their
// results in the very next report, sent at once; the answer's bad op is
// answered with the agent's refusal, an unknown node as not found.
func TestReportDoesOps(t *testing.T) {
	t.Parallel()
	fd := &fakeDocker{state: "active", control: true}
	nodes := &fakeNodes{availability: "active"}
	fd.extra = nodes.handle
	var mu sync.Mutex
	var reports []api.Report
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rep api.Report
		if err := api.Decode(r.Body, &rep); err != nil {
			t.Errorf("appliance: %v", err)
		}
		mu.Lock()
		reports = append(reports, rep)
		n := len(reports)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ops":[{"id":"op-1","node":"w1id","do":"drain"},{"id":"op-2","node":"gone","do":"remove-force"},`+
				`{"id":"op-3","node":"w1id","do":"reboot"},{"id":"op 4","node":"w1id","do":"drain"},{"id":"op-5","node":"w1id","do":"remove"}]}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer app.Close()
	a := testAgent(t, app, fd.serve(t))

	if err := a.report(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 {
		t.Fatalf("%d reports, want 2 (the second right after the ops)", len(reports))
	}
	if len(reports[0].OpResults) != 0 {
		t.Errorf("first report carries results: %+v", reports[0].OpResults)
	}
	got := reports[1].OpResults
	if len(got) != 4 {
		t.Fatalf("results %+v, want 4 (the op without a usable ID is dropped)", got)
	}
	if got[0] != (api.NodeOpResult{ID: "op-1"}) {
		t.Errorf("drain: %+v, want done", got[0])
	}
	if got[1].ID != "op-2" || !got[1].NotFound || !strings.Contains(got[1].Error, "gone not found") {
		t.Errorf("remove of an unknown node: %+v", got[1])
	}
	if got[2].ID != "op-3" || !strings.Contains(got[2].Error, `"reboot" is not one of`) || got[2].NotFound {
		t.Errorf("unknown verb: %+v", got[2])
	}
	if got[3] != (api.NodeOpResult{ID: "op-5"}) {
		t.Errorf("remove: %+v", got[3])
	}
	if nodes.availability != "drain" || nodes.version != "9" || len(nodes.removed) != 1 || nodes.removed[0] != "w1id force=" {
		t.Errorf("docker saw availability %q at version %q, removals %v", nodes.availability, nodes.version, nodes.removed)
	}
	if err := (&reports[1]).Validate(); err != nil {
		t.Errorf("the results report is not valid: %v", err)
	}
}

// Old and new answers: 204, an empty 200 and a body an older agent
// ignores all work.
func TestReportAnswers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		code int
		body string
		ops  int
	}{{"204", http.StatusNoContent, "", 0}, {"empty 200", http.StatusOK, "", 0}, {"ops", http.StatusOK, `{"ops":[{"id":"op-1","node":"n","do":"drain"}]}`, 1}} {
		app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.code)
			io.WriteString(w, c.body)
		}))
		a := testAgent(t, app, (&fakeDocker{}).serve(t))
		ans, err := a.client.ReportOps(context.Background(), api.Report{})
		if err != nil || len(ans.Ops) != c.ops {
			t.Errorf("%s: ReportOps %+v, %v; want %d ops", c.name, ans, err, c.ops)
		}
		if err := a.client.Report(context.Background(), api.Report{}); err != nil {
			t.Errorf("%s: Report (what older callers use): %v", c.name, err)
		}
		app.Close()
	}
}

// testAgent is an agent talking to app (no client certificate) and to
// the Docker API at dockerHost.
func testAgent(t *testing.T, app *httptest.Server, dockerHost string) *Agent {
	t.Helper()
	roots := app.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	a, err := New(Config{URL: app.URL, Roots: roots, DockerHost: dockerHost, DataPath: t.TempDir(), Console: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.docker.Close() })
	if a.client, err = NewClient(app.URL, "", roots, nil); err != nil {
		t.Fatal(err)
	}
	return a
}
