package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/swarmboot/swarmboot/appliance/enroll"
	"github.com/swarmboot/swarmboot/appliance/store"
	"github.com/swarmboot/swarmboot/appliance/swarm"
	"github.com/swarmboot/swarmboot/pkg/api"
)

// ErrNoNode is returned by Revoke for a name no enrolled node has.
var ErrNoNode = errors.New("admin: no such node")

// Revoker revokes a node's certificate and takes its swarm node out of
// the swarm through a manager, waiting until ctx ends; it returns what
// became of the swarm node in one line. *enroll.Server is one (a running
// agent API must do it itself, so it forgets its cached identity at once).
type Revoker interface {
	RevokeNode(ctx context.Context, name string) (swarmNote string, err error)
}

// DefaultRevokeWait is how long Revoke waits for a manager to remove the
// revoked node's swarm node: well under the client's 30 s timeout (and
// the server's write timeout), so the answer with what became of the
// swarm node gets back to the caller.
const DefaultRevokeWait = 20 * time.Second

// Ops are the admin operations on a store. The socket server runs them
// inside the appliance; the CLI runs them on the store directly when no
// appliance is running, so both give the same answers.
type Ops struct {
	Store *store.Store
	// Revoker is the running agent API (nil → an enroll.Server on Store,
	// for a store no appliance serves).
	Revoker Revoker
	// RevokeWait bounds Revoke's wait for the swarm node's removal
	// (0 → DefaultRevokeWait). A removal not done by then is abandoned and
	// the note says how to do it by hand.
	RevokeWait time.Duration
	// KernelLine issues a token that the running appliance also puts on
	// the iPXE kernel line of the machine who names (a MAC or a VM of the
	// store), valid ttl (0 → the appliance's default); it returns the MAC,
	// the token and its expiry. Nil without a running appliance:
	// TokenRequest.KernelLine is then refused with ErrNeedsAppliance.
	KernelLine func(who string, ttl time.Duration) (mac, token string, expires time.Time, err error)
	// Rotator runs rolls (nil without a running appliance: a roll is then
	// refused with ErrNeedsAppliance; the latest roll's record is still
	// readable).
	Rotator Rotator
	// Destroyer deletes VMs through the appliance's vCenter session,
	// draining and removing their swarm nodes (nil without a running
	// appliance: a destroy is then refused with ErrNeedsAppliance).
	Destroyer Destroyer
	Now       func() time.Time // nil → time.Now
}

// ErrNeedsAppliance is a request only the running appliance can do.
var ErrNeedsAppliance = errors.New("admin: needs the running appliance")

func (o *Ops) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// CreateToken makes a one-time enrollment token (enroll.NewToken: only its
// hash is stored). The token is in the response only: never log it.
func (o *Ops) CreateToken(req TokenRequest) (*TokenResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	ttl, _ := req.Duration()
	if req.KernelLine {
		if o.KernelLine == nil {
			return nil, fmt.Errorf("%w: the iPXE kernel-line tokens live in its memory (start swarmboot appliance run, or create the token without --kernel-line)", ErrNeedsAppliance)
		}
		who := req.MAC
		if who == "" {
			who = req.VM
		}
		mac, tok, exp, err := o.KernelLine(who, ttl)
		if err != nil {
			return nil, err
		}
		return &TokenResponse{Token: tok, Expires: exp.UTC(), MAC: mac}, nil
	}
	if ttl <= 0 {
		ttl = enroll.DefaultTTL
	}
	now := o.now()
	tok, err := enroll.NewToken(o.Store, enroll.TokenFor{VM: req.VM, MAC: req.MAC, BIOSUUID: req.BIOSUUID}, ttl, now)
	if err != nil {
		return nil, err
	}
	return &TokenResponse{Token: tok, Expires: now.Add(ttl).UTC()}, nil
}

// Revoke revokes the node named name: the agent API refuses its
// certificate from its next call on, and its spent token cannot enroll it
// again; then its swarm node is removed through a manager, for up to
// RevokeWait or until ctx ends, and SwarmNote says how that went. A node
// revoked before is left as it is (Already, no SwarmNote).
func (o *Ops) Revoke(ctx context.Context, name string) (*RevokeResponse, error) {
	req := RevokeRequest{Name: name}
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	var prev time.Time
	err := o.Store.View(func(tx *store.Tx) error {
		n, err := tx.Node(name)
		if err != nil {
			return err
		}
		prev = n.Revoked
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoNode, name)
	}
	if err != nil {
		return nil, err
	}
	if !prev.IsZero() {
		return &RevokeResponse{Name: name, Revoked: prev.UTC(), Already: true}, nil
	}
	rv := o.Revoker
	if rv == nil {
		rv = &enroll.Server{Store: o.Store, Now: o.Now, Swarm: offline{}}
	}
	wait := o.RevokeWait
	if wait <= 0 {
		wait = DefaultRevokeWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	note, err := rv.RevokeNode(ctx, name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNoNode, name)
		}
		return nil, err
	}
	var at time.Time
	err = o.Store.View(func(tx *store.Tx) error {
		n, err := tx.Node(name)
		if err == nil {
			at = n.Revoked
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &RevokeResponse{Name: name, Revoked: at.UTC(), SwarmNote: note}, nil
}

// errOffline is why a revoke on the store alone leaves the swarm node.
var errOffline = errors.New("the appliance is not running, so no manager was asked")

// offline is the swarm of a store no appliance serves: nobody to ask.
type offline struct{}

func (offline) Swarm(context.Context) (swarm.Info, error)             { return swarm.Info{}, errOffline }
func (offline) SetAvailability(context.Context, string, string) error { return errOffline }
func (offline) Remove(context.Context, string, bool) error            { return errOffline }

// Nodes lists every enrolled node, ordered by name.
func (o *Ops) Nodes() ([]Node, error) {
	var ns []store.Node
	err := o.Store.View(func(tx *store.Tx) error {
		var err error
		ns, err = tx.Nodes()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]Node, 0, len(ns))
	for _, n := range ns {
		v := Node{Name: n.Name, VM: n.VM, MACs: n.MACs, Role: n.Role, Enrolled: n.Enrolled.UTC(),
			CertNotAfter: n.NotAfter.UTC(), LastSeen: utc(n.LastSeen), Revoked: utc(n.Revoked)}
		if v.MACs == nil {
			v.MACs = []string{}
		}
		if len(n.LastReport) > 0 {
			var rep api.Report
			if json.Unmarshal(n.LastReport, &rep) == nil {
				v.Image = rep.ImageVersion
				v.Swarm = SwarmState{State: rep.Swarm.State, Role: rep.Swarm.Role, NodeID: rep.Swarm.NodeID}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
