package vsphere

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// TestDrainingTransportKeepsConnections: a reader that stops at the end of
// its document (as the SOAP decoder does) before the chunked response's
// last chunk arrived loses the connection, unless the body is drained.
func TestDrainingTransportKeepsConnections(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<doc>"+strings.Repeat("x", 10000)+"</doc>")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond) // the terminating chunk comes later
	}))
	defer srv.Close()
	reused := func(rt http.RoundTripper) []bool {
		var out []bool
		c := &http.Client{Transport: rt}
		for i := 0; i < 3; i++ {
			tr := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { out = append(out, i.Reused) }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), tr), "GET", srv.URL, nil)
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadFull(res.Body, make([]byte, 10011)) // up to </doc>, not to EOF
			res.Body.Close()
		}
		return out
	}
	plain := reused(&http.Transport{})
	drained := reused(drainingTransport{&http.Transport{}})
	if plain[1] || plain[2] {
		t.Logf("the plain transport reused its connection (%v): the test no longer shows the problem", plain)
	}
	if !drained[1] || !drained[2] {
		t.Errorf("connection not reused with draining: %v (plain transport: %v)", drained, plain)
	}
}
