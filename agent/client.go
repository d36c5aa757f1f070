package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/swarmboot/swarmboot/pkg/api"
)

// ErrRefused is wrapped when the appliance refuses a call (4xx): retrying
// the same thing will not help without an operator.
var ErrRefused = errors.New("refused by the appliance")

// Client talks to the appliance's agent API, pinning its CA.
type Client struct {
	base string
	id   *Identity
	hc   *http.Client
}

// NewClient makes a client for the appliance at baseURL (https) trusting
// only roots; serverName overrides the TLS name checked.
func NewClient(baseURL, serverName string, roots *x509.CertPool, id *Identity) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("appliance URL %q: want https://HOST:PORT", baseURL)
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), id: id}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:    roots,
			ServerName: serverName,
			MinVersion: tls.VersionTLS13,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				if id == nil || id.Cert() == nil {
					return &tls.Certificate{}, nil // none yet: enrollment only
				}
				return id.Cert(), nil
			},
		},
		MaxIdleConnsPerHost: 2, // a long poll and a report
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	c.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return c, nil
}

// CloseIdle drops kept-alive connections (after the certificate changed).
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e api.Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		err := fmt.Errorf("%s %s: %w", method, path, &StatusError{Code: resp.StatusCode, Status: resp.Status, Msg: e.Error})
		if resp.StatusCode/100 == 4 {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || resp.ContentLength == 0 {
		// No body (204, or an empty 200): out stays as it is.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, api.MaxBody))
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, api.MaxBody))
	return dec.Decode(out)
}

// StatusError is the appliance's non-2xx answer (errors.As finds it).
type StatusError struct {
	Code   int
	Status string // "409 Conflict"
	Msg    string // the appliance's api.Error text
}

func (e *StatusError) Error() string { return e.Status + ": " + e.Msg }

// Enroll trades the token for a node certificate.
func (c *Client) Enroll(ctx context.Context, req api.EnrollRequest) (api.EnrollResponse, error) {
	var r api.EnrollResponse
	err := c.do(ctx, http.MethodPost, api.PathEnroll, req, &r)
	return r, err
}

// Plan asks what to do.
func (c *Client) Plan(ctx context.Context) (api.Plan, error) {
	var p api.Plan
	err := c.do(ctx, http.MethodGet, api.PathPlan, nil, &p)
	return p, err
}

// Report sends a heartbeat.
func (c *Client) Report(ctx context.Context, r api.Report) error {
	return c.do(ctx, http.MethodPost, api.PathReport, r, nil)
}

// ReportOps sends a heartbeat and returns the node operations the
// appliance answers with (none on 204 No Content or an empty body; only
// an active manager's agent gets any). The operations are not validated
// here: the agent answers a bad one with its reason.
func (c *Client) ReportOps(ctx context.Context, r api.Report) (api.ReportAnswer, error) {
	var a api.ReportAnswer
	err := c.do(ctx, http.MethodPost, api.PathReport, r, &a)
	if len(a.Ops) > api.MaxNodeOps {
		a.Ops = a.Ops[:api.MaxNodeOps]
	}
	return a, err
}

// Renew asks for a new certificate for the same key.
func (c *Client) Renew(ctx context.Context) ([]byte, error) {
	csr, err := c.id.CSR()
	if err != nil {
		return nil, err
	}
	var r api.RenewResponse
	err = c.do(ctx, http.MethodPost, api.PathRenew, api.RenewRequest{CSR: csr}, &r)
	return r.Certificate, err
}
