package vsphere

import (
	"context"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// wait returns the finished task's info. It reads the task once first:
// short tasks (power, reconfigure, and every task on a quiet vCenter) are
// often done by then, which saves the property collector set-up and
// tear-down a full wait costs (about five round trips).
func (c *Client) wait(ctx context.Context, t *object.Task) (*types.TaskInfo, error) {
	var m mo.Task
	if err := property.DefaultCollector(c.VC).RetrieveOne(ctx, t.Reference(), []string{"info"}, &m); err == nil {
		switch m.Info.State {
		case types.TaskInfoStateSuccess:
			return &m.Info, nil
		case types.TaskInfoStateError:
			return &m.Info, task.Error{LocalizedMethodFault: m.Info.Error, Description: m.Info.Description}
		}
	}
	return t.WaitForResult(ctx, nil)
}
