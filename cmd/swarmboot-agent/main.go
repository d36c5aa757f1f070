// Command swarmboot-agent runs inside every swarmboot image: it enrolls
// with the appliance, joins the swarm and reports its disk. Its trust
// material (appliance URL + CA) is baked into the image under
// /etc/swarmboot; it needs no flags there.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/swarmboot/swarmboot/agent"
	"github.com/swarmboot/swarmboot/images/build/imageversion"
	"github.com/swarmboot/swarmboot/pkg/api"
	"github.com/swarmboot/swarmboot/pkg/version"
)

func main() {
	trust := flag.String("trust", api.TrustDir, "directory with appliance.json and ca.pem")
	state := flag.String("state", agent.DefaultStateDir, "node key and certificate (on the persistent disk)")
	dockerHost := flag.String("docker", "unix:///var/run/docker.sock", "local Docker API")
	data := flag.String("data", "/var/lib/docker", "directory whose disk is reported")
	tokenFile := flag.String("token-file", filepath.Join(api.TrustDir, "token"), "token file (after guestinfo and the kernel command line)")
	advertise := flag.String("advertise-addr", "", "swarm advertise address (default: dockerd's choice)")
	image := flag.String("image-version", "", "image version to report (default: the image's "+imageversion.FileName+" in the --trust directory, else \"image\" in appliance.json)")
	uuidFile := flag.String("bios-uuid-file", "/sys/class/dmi/id/product_uuid", "where the BIOS UUID is read")
	heartbeat := flag.Duration("heartbeat", 30*time.Second, "time between heartbeats (± 20 % jitter)")
	verbose := flag.Bool("v", false, "debug logging")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("swarmboot-agent", version.Version)
		return
	}
	lvl := slog.LevelInfo
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	cfg, roots, err := api.LoadTrust(*trust)
	if err != nil {
		fmt.Fprintln(os.Stderr, "swarmboot-agent:", err)
		os.Exit(1)
	}
	if *image == "" {
		// The builder bakes the version into the image beside the trust
		// material; images built before that carry only appliance.json's name.
		v, err := imageversion.Resolve(*trust, cfg.Image)
		if err != nil {
			log.Warn("image version file unreadable; reporting appliance.json's image instead", "err", err, "image", v)
		}
		*image = v
	}
	a, err := agent.New(agent.Config{
		URL: cfg.URL, ServerName: cfg.ServerName, Roots: roots,
		StateDir: *state, DockerHost: *dockerHost, DataPath: *data, Advertise: *advertise,
		Tokens:       []agent.TokenSource{agent.GuestinfoToken{}, agent.CmdlineToken{}, agent.FileToken{Path: *tokenFile}},
		ImageVersion: *image, Log: log, BIOSUUIDPath: *uuidFile, Heartbeat: *heartbeat,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "swarmboot-agent:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "swarmboot-agent:", err)
		os.Exit(1)
	}
}
