package vsphere

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/types"
)

// Sentinel errors callers test with errors.Is.
var (
	ErrLogin       = errors.New("vsphere: login failed")
	ErrNotFound    = errors.New("vsphere: not found")
	ErrNoSpace     = errors.New("vsphere: out of space")
	ErrTimeout     = errors.New("vsphere: timed out")
	ErrExists      = errors.New("vsphere: already exists")
	ErrTask        = errors.New("vsphere: task failed")
	ErrPermission  = errors.New("vsphere: permission denied")
	ErrUnreachable = errors.New("vsphere: unreachable")
)

// Error is one explained vCenter failure: what was being done to which
// object, what went wrong, and what to do about it.
type Error struct {
	Kind   error // one of the sentinel errors
	Action string
	Object string
	Reason string
	Advice string
	Err    error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Action, e.Object, e.Reason)
	if e.Advice != "" {
		s += ": " + e.Advice
	}
	return s
}

// Unwrap lets errors.Is see both the kind and the cause.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// Explain maps err from an action on obj ("create", "VM tf-sw-1") to one
// line that says what to do. Already explained errors pass through.
func Explain(err error, action, obj string) error {
	if err == nil {
		return nil
	}
	var done *Error
	if errors.As(err, &done) {
		return err
	}
	e := &Error{Action: action, Object: obj, Err: err, Kind: ErrTask, Reason: oneLine(err)}
	var nf *find.NotFoundError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Kind, e.Reason, e.Advice = ErrTimeout, "timed out", "vCenter is slow or unreachable; check it and run the command again (it resumes safely)"
	case errors.Is(err, context.Canceled):
		e.Kind, e.Reason, e.Advice = ErrTimeout, "cancelled", "run the command again; it resumes where it stopped"
	case fault.Is(err, &types.InvalidLogin{}) || fault.Is(err, &types.NotAuthenticated{}):
		e.Kind, e.Reason, e.Advice = ErrLogin, "user name or password rejected", "check vcenter.user and $SWARMBOOT_VSPHERE_PASSWORD (or $GOVC_USERNAME/$GOVC_PASSWORD)"
	case fault.Is(err, &types.NoPermission{}):
		e.Kind, e.Advice = ErrPermission, "grant the vCenter user the privilege named above on this object"
	case fault.Is(err, &types.InsufficientStorageSpace{}) || fault.Is(err, &types.NoDiskSpace{}) || strings.Contains(strings.ToLower(e.Reason), "no space") || strings.Contains(strings.ToLower(e.Reason), "insufficient disk space"):
		e.Kind, e.Reason, e.Advice = ErrNoSpace, "datastore out of space ("+e.Reason+")", "free space on the datastore or set datastore: to another one in the site file"
	case fault.Is(err, &types.ManagedObjectNotFound{}) || errors.As(err, &nf):
		e.Kind, e.Advice = ErrNotFound, "it was removed or renamed in vCenter; run `swarmboot plan` again"
	case fault.Is(err, &types.DuplicateName{}) || fault.Is(err, &types.FileAlreadyExists{}) || fault.Is(err, &types.AlreadyExists{}):
		e.Kind, e.Advice = ErrExists, "something else already uses that name; rename it in vCenter or change the group's pattern"
	case fault.Is(err, &types.InvalidPowerState{}) || fault.Is(err, &types.InvalidState{}) || fault.Is(err, &types.TaskInProgress{}):
		e.Advice = "the object changed state meanwhile; run the command again"
	case isNetErr(err):
		e.Kind, e.Advice = ErrUnreachable, "check vcenter.url, DNS and the network path to vCenter"
	default:
		var te task.Error
		if errors.As(err, &te) {
			e.Reason = "task failed: " + e.Reason
		}
		e.Advice = "see the vCenter task list for details"
	}
	return e
}

func isNetErr(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &oe)
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimPrefix(s, "ServerFaultCode: ")
	return s
}
