package enroll

import (
	"context"

	"github.com/swarmboot/swarmboot/appliance/store"
)

// batcher commits heartbeats in groups: one bbolt transaction (one fsync)
// for every report that arrived while the previous one was committing.
type batcher struct {
	st *store.Store
	ch chan *job
}

type job struct {
	apply func(*store.Tx) error
	done  chan error
}

const maxBatch = 512

func newBatcher(st *store.Store) *batcher {
	return &batcher{st: st, ch: make(chan *job, maxBatch)}
}

// do runs apply in the next batch and waits for its commit.
func (b *batcher) do(ctx context.Context, apply func(*store.Tx) error) error {
	j := &job{apply: apply, done: make(chan error, 1)}
	select {
	case b.ch <- j:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) run(ctx context.Context) {
	jobs := make([]*job, 0, maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-b.ch:
			jobs = append(jobs[:0], j)
		}
	drain:
		for len(jobs) < maxBatch {
			select {
			case j := <-b.ch:
				jobs = append(jobs, j)
			default:
				break drain
			}
		}
		errs := make([]error, len(jobs))
		err := b.st.Update(func(tx *store.Tx) error {
			for i, j := range jobs {
				errs[i] = j.apply(tx)
			}
			return nil
		})
		for i, j := range jobs {
			if err != nil {
				errs[i] = err
			}
			j.done <- errs[i]
		}
	}
}
