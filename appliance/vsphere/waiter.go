package vsphere

import (
	"context"
	"sync"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// Pauses between the Waiter's rounds: short while tasks keep finishing,
// doubling up to the cap while none does (real vCenter's creates take
// seconds; the simulator's milliseconds). A property-collector wait
// (WaitForUpdatesEx) would need a filter per task, and the simulator
// batches its updates every 20 ms.
const (
	waiterMinPause = 2 * time.Millisecond
	waiterMaxPause = 100 * time.Millisecond
)

// taskResult is a finished task (info, err) or a VM read (vm, err).
type taskResult struct {
	info *types.TaskInfo
	vm   *VM
	err  error
}

// Waiter waits for many concurrent vCenter tasks with one property
// collector read per round (RetrievePropertiesEx of every pending task's
// info), where Client.wait costs each task its own reads; reads of VMs
// (Get) ride along in the same call. Close it when done. Safe for
// concurrent use.
type Waiter struct {
	c       *Client
	mu      sync.Mutex
	pending map[types.ManagedObjectReference][]chan taskResult
	kick    chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
	rounds  int // round trips so far (tests, benchmark)
}

// NewWaiter starts a Waiter.
func (c *Client) NewWaiter() *Waiter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Waiter{c: c, pending: map[types.ManagedObjectReference][]chan taskResult{},
		kick: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	go w.run(ctx)
	return w
}

// Close stops the Waiter; Waits still pending return an error.
func (w *Waiter) Close() {
	w.cancel()
	<-w.done
}

// Rounds is how many property-collector reads the Waiter made.
func (w *Waiter) Rounds() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rounds
}

// Wait returns t's info once t finished; a failed task is an error
// (task.Error) with its info, as Client.wait.
func (w *Waiter) Wait(ctx context.Context, t *object.Task) (*types.TaskInfo, error) {
	r := w.await(ctx, t.Reference())
	return r.info, r.err
}

// Get reads one VM as Client.Get does, in the Waiter's next round.
func (w *Waiter) Get(ctx context.Context, ref types.ManagedObjectReference) (*VM, error) {
	r := w.await(ctx, ref)
	return r.vm, r.err
}

// await queues ref (a Task or a VirtualMachine) for the next round.
func (w *Waiter) await(ctx context.Context, ref types.ManagedObjectReference) taskResult {
	ch := make(chan taskResult, 1)
	w.mu.Lock()
	w.pending[ref] = append(w.pending[ref], ch)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		w.mu.Lock()
		chans := w.pending[ref]
		for i := range chans {
			if chans[i] == ch {
				w.pending[ref] = append(chans[:i:i], chans[i+1:]...)
				break
			}
		}
		if len(w.pending[ref]) == 0 {
			delete(w.pending, ref)
		}
		w.mu.Unlock()
		return taskResult{err: ctx.Err()}
	case <-w.done:
		return taskResult{err: context.Canceled}
	}
}

func (w *Waiter) run(ctx context.Context) {
	defer close(w.done)
	pause := waiterMinPause
	for {
		w.mu.Lock()
		refs := make([]types.ManagedObjectReference, 0, len(w.pending))
		for ref := range w.pending {
			refs = append(refs, ref)
		}
		w.mu.Unlock()
		if len(refs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.kick:
			}
			pause = waiterMinPause
			continue
		}
		res := w.c.read(ctx, refs)
		w.mu.Lock()
		w.rounds++
		for ref, r := range res {
			for _, ch := range w.pending[ref] {
				ch <- r
			}
			delete(w.pending, ref)
		}
		w.mu.Unlock()
		if len(res) > 0 {
			pause = waiterMinPause
		} else if pause < waiterMaxPause {
			pause *= 2
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// read reads, with one call, the info of every task in refs and every VM
// in refs (vmProps), and returns the VMs and the tasks that finished. When
// the call fails (an object vCenter no longer knows, a fault), each is
// waited for or read on its own instead.
func (c *Client) read(ctx context.Context, refs []types.ManagedObjectReference) map[types.ManagedObjectReference]taskResult {
	out := map[types.ManagedObjectReference]taskResult{}
	props := map[string][]string{"Task": {"info"}, "VirtualMachine": vmProps}
	var spec types.PropertyFilterSpec
	kinds := map[string]bool{}
	for _, ref := range refs {
		if !kinds[ref.Type] && props[ref.Type] != nil {
			kinds[ref.Type] = true
			spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: ref.Type, PathSet: props[ref.Type]})
		}
		spec.ObjectSet = append(spec.ObjectSet, types.ObjectSpec{Obj: ref, Skip: types.NewBool(false)})
	}
	res, err := property.DefaultCollector(c.VC).RetrieveProperties(ctx, types.RetrieveProperties{SpecSet: []types.PropertyFilterSpec{spec}})
	var tasks []mo.Task
	var vms []mo.VirtualMachine
	if err == nil {
		var tc, vc []types.ObjectContent
		for _, oc := range res.Returnval {
			if oc.Obj.Type == "Task" {
				tc = append(tc, oc)
			} else {
				vc = append(vc, oc)
			}
		}
		if err = mo.LoadObjectContent(tc, &tasks); err == nil {
			err = mo.LoadObjectContent(vc, &vms)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return out
		}
		for _, ref := range refs {
			var r taskResult
			if ref.Type == "Task" {
				r.info, r.err = c.wait(ctx, object.NewTask(c.VC, ref))
			} else {
				r.vm, r.err = c.Get(ctx, ref)
			}
			out[ref] = r
		}
		return out
	}
	for i := range vms {
		vm := fromMO(&vms[i])
		out[vms[i].Self] = taskResult{vm: &vm}
	}
	for i := range tasks {
		info := tasks[i].Info
		switch info.State {
		case types.TaskInfoStateSuccess:
			out[tasks[i].Self] = taskResult{info: &info}
		case types.TaskInfoStateError:
			out[tasks[i].Self] = taskResult{info: &info, err: task.Error{LocalizedMethodFault: info.Error, Description: info.Description}}
		}
	}
	return out
}

// waitAll waits for every task in tasks through one Waiter and returns
// their results in order.
func (c *Client) waitAll(ctx context.Context, tasks []*object.Task) []taskResult {
	w := c.NewWaiter()
	defer w.Close()
	out := make([]taskResult, len(tasks))
	var wg sync.WaitGroup
	for i, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].info, out[i].err = w.Wait(ctx, t)
		}()
	}
	wg.Wait()
	return out
}
