package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
)

// maxKernel bounds the kernel and microcode files held in memory.
const maxKernel = 512 << 20

// kernel takes the kernel binary and microcode from the kernel image into
// the Result and unpacks its kernel.tar (modules, firmware) into the root,
// as LinuxKit's kernel filter does.
func (a *assembler) kernel(ctx context.Context) error {
	k := a.c.Kernel
	binary, tarName, ucode := "kernel", "kernel.tar", ""
	if k.Binary != "" {
		binary = k.Binary
	}
	if k.Tar != nil {
		tarName = *k.Tar
		if tarName == "none" {
			tarName = ""
		}
	}
	if k.UCode != nil {
		ucode = *k.UCode
	}
	// role by file name; checked in this order so messages do not depend on map order
	names := map[string]string{}
	var order []string
	for _, rn := range [][2]string{{"kernel", binary}, {"tar", tarName}, {"ucode", ucode}} {
		if rn[1] == "" {
			continue
		}
		c, ok, err := cleanName(rn[1])
		if err != nil || !ok {
			return fmt.Errorf("%s: kernel: bad file name %q", k.Pos, rn[1])
		}
		names[c] = rn[0]
		order = append(order, c)
	}
	si, _, err := a.stackImage(k.Pos, "kernel", k.Image)
	if err != nil {
		return err
	}
	s := &stack{images: []stackImage{si}}
	state, err := s.scan(ctx)
	if err != nil {
		return fmt.Errorf("%s: kernel: %w", k.Pos, err)
	}
	for _, n := range order {
		role := names[n]
		e, ok := state[n]
		if ok && e.layer >= 0 && e.hdr.Mode.IsRegular() && !e.hdr.IsHardlink() {
			continue
		}
		switch role {
		case "kernel":
			return fmt.Errorf("%s: kernel: image %s has no file /%s; is it a kernel image? (set kernel.binary if the kernel has another name)", k.Pos, k.Image, n)
		case "tar":
			return fmt.Errorf("%s: kernel: image %s has no /%s; set kernel.tar: none if it ships no modules", k.Pos, k.Image, n)
		default:
			a.opt.Logger.Warn("rootfs: kernel image has no microcode file", "image", k.Image, "ucode", n)
			delete(names, n)
		}
	}
	if err := a.out.dir("boot", &Header{Mode: fs.ModeDir | 0o755}); err != nil {
		return err
	}
	a.opt.Logger.Info("rootfs: kernel", "image", k.Image)
	for li, l := range si.layers {
		err := forEachEntry(ctx, l, func(ord int, _ *tar.Header, name string, r io.Reader) error {
			e, ok := state[name]
			role := names[name]
			if !ok || role == "" || e.layer != li || e.ordinal != ord {
				return nil
			}
			var err error
			switch role {
			case "kernel":
				a.res.Kernel, err = readAllMax(r, maxKernel)
			case "ucode":
				a.res.Ucode, err = readAllMax(r, maxKernel)
			case "tar":
				err = a.kernelTar(ctx, r)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: kernel: image %s: %w", k.Pos, k.Image, err)
		}
	}
	return nil
}

func readAllMax(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("file larger than %d bytes", max)
	}
	return b, nil
}

// kernelTar unpacks the kernel image's tarball (plain or gzip'd) into the
// root, in its own order, parents first.
func (a *assembler) kernelTar(ctx context.Context, r io.Reader) error {
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("kernel tar: %w", err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	for {
		th, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kernel tar: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name, ok, err := cleanName(th.Name)
		if err != nil {
			return fmt.Errorf("kernel tar: %w", err)
		}
		if !ok {
			continue
		}
		h, err := tarHeader(th, name)
		if err != nil {
			return fmt.Errorf("kernel tar: %w", err)
		}
		if h == nil {
			continue
		}
		if h.Mode.IsDir() {
			err = a.out.dir(name, h)
		} else {
			err = a.out.entry(h, tr)
		}
		if err != nil {
			return err
		}
	}
}
