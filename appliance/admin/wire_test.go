package admin

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, want string }{
		{"unknown field", `{"mac":"52:54:00:00:00:01","token":"x"}`, "unknown field"},
		{"trailing data", `{"mac":"52:54:00:00:00:01"} {}`, "data after"},
		{"too large", `{"vm":"` + strings.Repeat("a", MaxRequest) + `"}`, "larger than"},
		{"no machine", `{}`, "name the machine"},
		{"bad mac", `{"mac":"nope"}`, "not an Ethernet MAC"},
		{"long mac", `{"mac":"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01"}`, "not an Ethernet MAC"},
		{"bad ttl", `{"mac":"52:54:00:00:00:01","ttl":"soon"}`, `ttl "soon": want a duration such as 2h or 30m`},
		{"negative ttl", `{"mac":"52:54:00:00:00:01","ttl":"-1h"}`, "want a duration"},
		{"control char", `{"vm":"w\u0007"}`, "control"},
		{"long name", `{"vm":"` + strings.Repeat("a", 300) + `"}`, "longer than"},
		{"not json", `vm=w1`, "invalid character"},
		{"kernel line, vm and mac", `{"vm":"w1","mac":"52:54:00:00:00:01","kernel_line":true}`, "not both"},
		{"kernel line with uuid", `{"mac":"52:54:00:00:00:01","kernel_line":true,"bios_uuid":"u"}`, "bound to the MAC"},
		{"wrong type", `{"vm":1}`, "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req TokenRequest
			err := decode(strings.NewReader(tc.body), &req)
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode(%.60q) = %v, want ErrDecode with %q", tc.body, err, tc.want)
			}
		})
	}
	var rr RevokeRequest
	if err := decode(strings.NewReader(`{"name":""}`), &rr); err == nil || !strings.Contains(err.Error(), "node ls") {
		t.Errorf("empty revoke name: %v", err)
	}
	var rot RotateRequest
	if err := decode(strings.NewReader(`{"groups":[{"group":"w","image":"i"}],"timeout":"-5m"}`), &rot); !errors.Is(err, ErrDecode) ||
		!strings.Contains(err.Error(), `timeout "-5m": want a duration such as 15m`) {
		t.Errorf("negative rotate timeout: %v", err)
	}
	var ok TokenRequest
	if err := decode(strings.NewReader(`{"vm":"worker-07","ttl":"2h"}`), &ok); err != nil || ok.VM != "worker-07" || ok.TTL != "2h" {
		t.Errorf("good request: %+v, %v", ok, err)
	}
}

// FuzzDecode feeds arbitrary bodies to both request decoders: they never
// panic, and what they accept is within the documented bounds.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"mac":"52:54:00:12:34:56","ttl":"2h"}`, `{"vm":"w1","bios_uuid":"4217-…"}`, `{"name":"mac-525400123456"}`,
		`{"vm":"a\u0000"}`, `{"ttl":"1e9h","mac":"52-54-00-12-34-56"}`, `[]`, `{"name":"x"}{"name":"y"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if tr, ok := fuzzDecode[TokenRequest](t, body); ok {
			if len(body) > MaxRequest || (tr.VM == "" && tr.MAC == "") || len(tr.VM) > maxName || len(tr.BIOSUUID) > maxName {
				t.Fatalf("accepted out-of-bounds token request %+v from %q", tr, body)
			}
			if d, err := tr.Duration(); err != nil || d < 0 {
				t.Fatalf("accepted ttl %q: %v", tr.TTL, err)
			}
		}
		if rr, ok := fuzzDecode[RevokeRequest](t, body); ok {
			if rr.Name == "" || len(rr.Name) > maxName || strings.ContainsAny(rr.Name, "\x00\n\r\x1b") {
				t.Fatalf("accepted revoke name %q", rr.Name)
			}
		}
	})
}

// fuzzDecode decodes body as a T the way the server does; a refusal must
// be an ErrDecode (ok is then false).
func fuzzDecode[T any, PT interface {
	*T
	Validate() error
}](t *testing.T, body []byte) (T, bool) {
	t.Helper()
	var v T
	err := decode(strings.NewReader(string(body)), PT(&v))
	if err != nil && !errors.Is(err, ErrDecode) {
		t.Fatalf("refusal without ErrDecode: %v", err)
	}
	return v, err == nil
}
