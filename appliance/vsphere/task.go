package vsphere

import (
	"context"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// wait returns the finished task's info. It reads the task a few times
// over ~15 ms first: short tasks (power, reconfigure, boot order) are
// usually done by then, which saves the property collector set-up and
// tear-down a full wait costs (about five round trips). Longer tasks get
// the full wait.
func (c *Client) wait(ctx context.Context, t *object.Task) (*types.TaskInfo, error) {
	pc := property.DefaultCollector(c.VC)
	for _, pause := range []time.Duration{0, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond} {
		if pause > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(pause):
			}
		}
		var m mo.Task
		if err := pc.RetrieveOne(ctx, t.Reference(), []string{"info"}, &m); err != nil {
			break
		}
		switch m.Info.State {
		case types.TaskInfoStateSuccess:
			return &m.Info, nil
		case types.TaskInfoStateError:
			return &m.Info, task.Error{LocalizedMethodFault: m.Info.Error, Description: m.Info.Description}
		}
	}
	return t.WaitForResult(ctx, nil)
}
