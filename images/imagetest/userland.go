package imagetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// InitScript is the fixture init image's /init. It works as PID 1 in an
// initramfs: it mounts proc, sys and dev, prints Marker and the kernel
// command line on the console, then powers off (or idles when the command
// line holds swarmboot.fixture.hold). It never exits: PID 1 exiting panics
// the kernel.
const InitScript = `#!/bin/sh
# swarmboot fixture init (images/imagetest): prove the initramfs booted.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
echo "` + Marker + ` cmdline=$(cat /proc/cmdline)"
case " $(cat /proc/cmdline) " in
*" swarmboot.fixture.hold "*) ;;
*) sync; poweroff -f ;;
esac
while :; do sleep 3600; done
`

// Labels of the onboot and service fixture images, in LinuxKit's
// org.mobyproject.config format.
var (
	OnbootLabel  = `{"binds":["/dev:/dev"],"capabilities":["CAP_SYS_ADMIN","CAP_MKNOD"],"net":"host"}`
	ServiceLabel = `{"binds":["/etc/resolv.conf:/etc/resolv.conf","/var/log:/var/log"],"capabilities":["CAP_NET_ADMIN","CAP_NET_RAW"],"net":"host","pid":"host","readonly":true}`
)

// busyboxTar adds /bin/busybox and a symlink for every applet it lists.
func busyboxTar(ctx context.Context, bbPath string) (*tarBuilder, error) {
	t := newTar()
	if err := t.diskFile("bin/busybox", 0o755, bbPath); err != nil {
		return nil, err
	}
	applets, err := exec.CommandContext(ctx, bbPath, "--list-full").Output()
	if err != nil || len(applets) == 0 {
		// Cannot run it here: the few applets the fixtures use.
		applets = []byte("bin/sh\nbin/cat\nbin/echo\nbin/mkdir\nbin/mount\nbin/sleep\nbin/sync\nbin/ls\nsbin/poweroff\nsbin/reboot\n")
	}
	sc := bufio.NewScanner(bytes.NewReader(applets))
	for sc.Scan() {
		name := cleanRel(strings.TrimSpace(sc.Text()))
		if name == "" || name == "bin/busybox" || strings.Contains(name, "..") {
			continue
		}
		t.symlink(name, "/bin/busybox")
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "etc", "var", "run", "root"} {
		t.dir(d, 0o755)
	}
	t.dir("tmp", 0o1777)
	return t, nil
}

// userlandImages builds the init, onboot and service images from the
// static busybox at bbPath.
func userlandImages(ctx context.Context, bbPath string) (initImg, onboot, service v1.Image, err error) {
	bb, err := busyboxTar(ctx, bbPath)
	if err != nil {
		return nil, nil, nil, err
	}
	base, err := bb.layer()
	if err != nil {
		return nil, nil, nil, err
	}
	it := newTar()
	it.file("init", 0o755, []byte(InitScript))
	it.charDev("dev/console", 0o600, 5, 1)
	it.file("etc/swarmboot-fixture", 0o644, []byte("swarmboot fixture init\n"))
	initLayer, err := it.layer()
	if err != nil {
		return nil, nil, nil, err
	}
	if initImg, err = image(imageConfig{}, base, initLayer); err != nil {
		return nil, nil, nil, err
	}
	onboot, err = image(imageConfig{
		Cmd:    []string{"/bin/sh", "-c", "echo swarmboot-fixture-onboot ran"},
		Labels: map[string]string{"org.mobyproject.config": mustCompact(OnbootLabel)},
	}, base)
	if err != nil {
		return nil, nil, nil, err
	}
	service, err = image(imageConfig{
		Cmd:    []string{"/bin/sh", "-c", "echo swarmboot-fixture-service up; exec sleep 2147483647"},
		Env:    []string{"PATH=/sbin:/bin:/usr/sbin:/usr/bin", "FIXTURE=service"},
		Labels: map[string]string{"org.mobyproject.config": mustCompact(ServiceLabel)},
	}, base)
	return initImg, onboot, service, err
}

func mustCompact(s string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		panic("imagetest: bad label JSON: " + err.Error())
	}
	return b.String()
}
