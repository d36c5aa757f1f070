package vsphere

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// PushDir is the datastore directory ISOs are pushed to.
const PushDir = "swarmboot"

// PushResult says where an ISO is and whether it was uploaded now.
type PushResult struct {
	Path     string // "[datastore] swarmboot/<name>-<sha256[:12]>.iso"
	File     string // path inside the datastore
	Size     int64
	Uploaded bool // false when it was already there
}

// Progress receives bytes sent so far of total.
type Progress func(sent, total int64)

// PushName is the content-addressed datastore file name of the ISO at
// local, given its SHA-256.
func PushName(local string, sum []byte) string {
	base := strings.TrimSuffix(filepath.Base(local), filepath.Ext(local))
	return fmt.Sprintf("%s/%s-%s.iso", PushDir, base, hex.EncodeToString(sum)[:12])
}

// DatastoreFile is where Push puts the ISO at local (a path inside the
// datastore), computed from its content.
func DatastoreFile(local string) (string, error) {
	f, err := os.Open(local)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", local, err)
	}
	defer f.Close()
	return datastoreName(f, local)
}

func datastoreName(f *os.File, local string) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("image %s: read: %w", local, err)
	}
	return PushName(local, h.Sum(nil)), nil
}

// Push uploads the ISO at local to ds as swarmboot/<name>-<sha256[:12]>.iso
// unless a file of that name and size is already there. The upload goes to
// a temporary name and is moved into place when complete, so a broken
// upload never looks finished; it is retried up to 3 times.
func (c *Client) Push(ctx context.Context, dc *object.Datacenter, ds *object.Datastore, local string, progress Progress) (*PushResult, error) {
	f, err := os.Open(local)
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", local, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("push %s: %w", local, err)
	}
	file, err := datastoreName(f, local)
	if err != nil {
		return nil, err
	}
	res := &PushResult{Path: ds.Path(file), File: file, Size: st.Size()}
	obj := "ISO " + res.Path
	if size, ok, err := c.statSize(ctx, ds, file); err != nil {
		return nil, Explain(err, "check", obj)
	} else if ok && size == st.Size() {
		c.Log.Info("image already on datastore", "image", res.Path, "bytes", size)
		return res, nil
	} else if ok {
		c.Log.Warn("image on datastore has the wrong size; uploading again", "image", res.Path, "have", size, "want", st.Size())
	}
	fm := object.NewFileManager(c.VC)
	if err := fm.MakeDirectory(ctx, ds.Path(PushDir), dc, true); err != nil && !fault.Is(err, &types.FileAlreadyExists{}) {
		return nil, Explain(err, "create directory", ds.Path(PushDir))
	}
	part := fmt.Sprintf("%s/.%s.part", PushDir, filepath.Base(file))
	var last error
	for attempt := 1; attempt <= 3; attempt++ {
		if attempt > 1 {
			c.Log.Warn("upload broke; retrying", "image", res.Path, "attempt", attempt, "err", oneLine(last))
			select {
			case <-ctx.Done():
				return nil, Explain(ctx.Err(), "upload", obj)
			case <-time.After(time.Duration(attempt-1) * 500 * time.Millisecond):
			}
		}
		if last = c.upload(ctx, ds, f, st.Size(), part, progress); last == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, Explain(ctx.Err(), "upload", obj)
		}
	}
	if last != nil {
		return nil, Explain(last, "upload", obj)
	}
	task, err := fm.MoveDatastoreFile(ctx, ds.Path(part), dc, res.Path, dc, true)
	if err == nil {
		_, err = c.wait(ctx, task)
	}
	if err != nil {
		return nil, Explain(err, "move into place", obj)
	}
	res.Uploaded = true
	c.Log.Info("pushed image", "image", res.Path, "bytes", st.Size())
	return res, nil
}

// uploadHook lets tests break an upload part way.
var uploadHook func(io.Reader) io.Reader

func (c *Client) upload(ctx context.Context, ds *object.Datastore, f *os.File, size int64, file string, progress Progress) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	var r io.Reader = &countingReader{r: f, total: size, fn: progress}
	if uploadHook != nil {
		r = uploadHook(r)
	}
	p := soap.DefaultUpload
	p.ContentLength = size
	return ds.Upload(ctx, r, file, &p)
}

// statSize reports the size of file on ds and whether it exists.
// It is Datastore.Stat with the search task waited for by c.wait (a few
// early reads) instead of a property-collector wait (the simulator
// batches those every 20 ms: a plan paid it once per image).
func (c *Client) statSize(ctx context.Context, ds *object.Datastore, file string) (int64, bool, error) {
	b, err := ds.Browser(ctx)
	if err != nil {
		return 0, false, err
	}
	spec := types.HostDatastoreBrowserSearchSpec{Details: &types.FileQueryFlags{FileType: true, FileSize: true},
		MatchPattern: []string{path.Base(file)}}
	task, err := b.SearchDatastore(ctx, ds.Path(path.Dir(file)), &spec)
	if err != nil {
		return 0, false, err
	}
	info, err := c.wait(ctx, task)
	if err != nil {
		if types.IsFileNotFound(err) { // the directory is not there
			return 0, false, nil
		}
		return 0, false, err
	}
	res, _ := info.Result.(types.HostDatastoreBrowserSearchResults)
	if len(res.File) == 0 {
		return 0, false, nil
	}
	return res.File[0].GetFileInfo().FileSize, true, nil
}

type countingReader struct {
	r           io.Reader
	sent, total int64
	fn          Progress
	last        time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sent += int64(n)
	if c.fn != nil && (time.Since(c.last) > 200*time.Millisecond || err == io.EOF || c.sent == c.total) {
		c.last = time.Now()
		c.fn(c.sent, c.total)
	}
	return n, err
}

// Exists reports whether file is on ds with the size of the local file.
func (c *Client) Exists(ctx context.Context, ds *object.Datastore, file, local string) (bool, error) {
	st, err := os.Stat(local)
	if err != nil {
		return false, fmt.Errorf("image %s: %w", local, err)
	}
	size, ok, err := c.statSize(ctx, ds, file)
	if err != nil {
		return false, Explain(err, "check", "ISO "+ds.Path(file))
	}
	return ok && size == st.Size(), nil
}

// CheckISO checks that the datastore path "[ds] dir/file.iso" exists in dc.
func (c *Client) CheckISO(ctx context.Context, dc *object.Datacenter, dsPath string) error {
	var p object.DatastorePath
	if !p.FromString(dsPath) || p.Path == "" {
		return fmt.Errorf("image %q: want \"[datastore] path/file.iso\"", dsPath)
	}
	f := find.NewFinder(c.VC, false)
	f.SetDatacenter(dc)
	ds, err := f.Datastore(ctx, p.Datastore)
	if err != nil {
		return Explain(err, "look up the datastore of", "image "+dsPath)
	}
	_, ok, err := c.statSize(ctx, ds, p.Path)
	if err != nil {
		return Explain(err, "check", "image "+dsPath)
	}
	if !ok {
		return &Error{Kind: ErrNotFound, Action: "check", Object: "image " + dsPath, Reason: "no such file on the datastore",
			Advice: "upload it (swarmboot push ISO) or point image: at a local ISO"}
	}
	return nil
}
