package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// ErrNotRunning says nothing answers on the admin socket: no appliance
// runs on this data dir (or one without an admin socket).
var ErrNotRunning = errors.New("admin: the appliance is not running")

// maxResponse bounds a response body (a node list of thousands of nodes
// fits many times over).
const maxResponse = 32 << 20

// clientTimeout bounds a call of Client (not a roll's progress stream).
const clientTimeout = 30 * time.Second

// Client calls the admin API of the appliance whose socket is Socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path (SocketPath(dataDir)).
func NewClient(path string) *Client {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &Client{Socket: path, hc: &http.Client{
		Timeout: clientTimeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", path)
			},
			MaxIdleConns: 1,
		},
	}}
}

// CreateToken asks the appliance for a one-time enrollment token.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*TokenResponse, error) {
	var out TokenResponse
	if err := c.do(ctx, http.MethodPost, PathTokens, &req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Revoke revokes the node named name (ErrNoNode when there is none).
func (c *Client) Revoke(ctx context.Context, name string) (*RevokeResponse, error) {
	var out RevokeResponse
	if err := c.do(ctx, http.MethodPost, PathRevoke, &RevokeRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Nodes lists the enrolled nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	var out NodesResponse
	if err := c.do(ctx, http.MethodGet, PathNodes, nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// Ping says whether something listens on the socket: nil when it does,
// ErrNotRunning when nothing does (no socket file, or one left by a
// crashed run), ErrRefused when this user may not connect.
func (c *Client) Ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return c.dialError(err)
	}
	return conn.Close()
}

// CloseIdle closes the kept-alive connection.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, c.hc, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		return fmt.Errorf("appliance (admin socket %s): bad answer: %w", c.Socket, err)
	}
	return nil
}

// post sends in and returns the 200 response, whose body the caller reads
// for as long as it takes (no overall timeout: a roll's progress stream
// lasts many minutes) and closes.
func (c *Client) post(ctx context.Context, path string, in any) (*http.Response, error) {
	stream := &http.Client{Transport: c.hc.Transport}
	return c.send(ctx, stream, http.MethodPost, path, in)
}

// send makes the call and turns a non-200 answer into an error.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://appliance"+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, c.dialError(err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var e ErrorResponse
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	if e.Error == "" {
		e.Error = resp.Status
	}
	switch resp.StatusCode {
	case http.StatusBadRequest:
		// The request's own fault, worded as Ops words it offline.
		return nil, errors.New(e.Error)
	case http.StatusNotFound:
		if path == PathRevoke {
			return nil, fmt.Errorf("%w: %s", ErrNoNode, e.Error)
		}
	case http.StatusConflict:
		if path == PathRotate {
			return nil, fmt.Errorf("%w: %s", ErrRotationRunning, e.Error)
		}
	case http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s", ErrRefused, e.Error)
	}
	return nil, fmt.Errorf("appliance (admin socket %s): %s", c.Socket, e.Error)
}

// dialError says what a failed call means for the operator.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing answers on %s)", ErrNotRunning, c.Socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w: admin socket %s: permission denied: run the command as root or as the user the appliance runs as", ErrRefused, c.Socket)
	}
	return fmt.Errorf("appliance (admin socket %s): %w", c.Socket, err)
}
