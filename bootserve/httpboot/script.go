package httpboot

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// script serves GET /boot/<mac>.ipxe.
func (h *handlers) script(c echo.Context) error {
	// iPXE escapes the colons of ${mac} in URLs (%3A); the router hands
	// parameters over still escaped.
	file, err := url.PathUnescape(c.Param("file"))
	if err != nil {
		h.m.refused.WithLabelValues("script").Inc()
		return echo.NewHTTPError(http.StatusBadRequest, "bad escape in path")
	}
	macStr, ok := strings.CutSuffix(file, ".ipxe")
	mac, err := net.ParseMAC(macStr)
	if !ok || err != nil || len(mac) != 6 {
		h.m.refused.WithLabelValues("script").Inc()
		return echo.NewHTTPError(http.StatusNotFound, "want /boot/<mac>.ipxe with an Ethernet MAC like 52:54:00:12:34:56")
	}
	ip := clientIP(c)
	log := h.log.With("mac", mac.String(), "ip", ip.String())
	ctx := c.Request().Context()
	m := Machine{MAC: mac, IP: ip, Arch: archParam(c)}
	b, err := h.s.Booter.Boot(ctx, m)
	switch {
	case errors.Is(err, ErrUnknown) || (err == nil && b == nil):
		b = h.s.Default
	case err != nil:
		log.Error("booter failed", "err", err)
		return echo.NewHTTPError(http.StatusInternalServerError, fmt.Sprintf("cannot decide what %s boots: %v", mac, err))
	}
	base := h.base(c)
	var text, detail string
	if b == nil {
		text = retryScript(base, h.retry)
		detail = "unknown machine: register and retry"
		log.Info("unknown machine asked for its script; told to retry", "retry", h.retry)
	} else {
		text, err = ipxeScript(base, mac, b)
		if err != nil {
			log.Error("bad boot entry", "err", err)
			return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
		}
		detail = b.Name
		h.m.started(mac)
		log.Info("ipxe script", "boot", b.Name)
	}
	h.record(timeline.Event{MAC: mac, IP: ip, Arch: m.Arch, Kind: timeline.Script, Detail: detail})
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(text))
}

// archParam reads ?arch= (iPXE's ${buildarch}, if the script URL passes it).
func archParam(c echo.Context) string {
	a := c.QueryParam("arch")
	if len(a) > 16 || strings.ContainsFunc(a, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return ""
	}
	return a
}

// base is BaseURL or http://<Host of the request>.
func (h *handlers) base(c echo.Context) string {
	if h.s.BaseURL != "" {
		return strings.TrimRight(h.s.BaseURL, "/")
	}
	return c.Scheme() + "://" + c.Request().Host
}

// ipxeScript renders the boot script of one machine. The kernel line
// carries initrd=NAME for every initrd: the EFI stub needs it to find the
// initrd that iPXE registered (Debian's 2019 ipxe.efi has no other way);
// under BIOS it is ignored.
func ipxeScript(base string, mac net.HardwareAddr, b *Boot) (string, error) {
	if b.Kernel == "" {
		return "", fmt.Errorf("boot entry %q for %s has no kernel: check the artifacts directory or the machine table", b.Name, mac)
	}
	cmdline := strings.TrimSpace(b.Cmdline + " " + b.Args)
	if strings.ContainsAny(cmdline, "\r\n") {
		return "", fmt.Errorf("boot entry %q for %s: kernel command line holds a line break", b.Name, mac)
	}
	var sb strings.Builder
	sb.WriteString("#!ipxe\n")
	fmt.Fprintf(&sb, "echo swarmboot: %s boots %s\n", mac, ipxeQuote(b.Name))
	names := make([]string, len(b.Initrd))
	for i := range b.Initrd {
		names[i] = fmt.Sprintf("initrd%d.img", i)
		if i == 0 {
			names[i] = "initrd.img"
		}
	}
	kargs := make([]string, 0, len(names)+1)
	for _, n := range names {
		kargs = append(kargs, "initrd="+n)
	}
	if cmdline != "" {
		kargs = append(kargs, cmdline)
	}
	ku, err := artifactURL(base, mac, b.Kernel)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&sb, "kernel %s %s\n", ku, strings.Join(kargs, " "))
	for i, rd := range b.Initrd {
		u, err := artifactURL(base, mac, rd)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&sb, "initrd --name %s %s\n", names[i], u)
	}
	sb.WriteString("boot\n")
	return sb.String(), nil
}

// artifactURL is name itself if it is an absolute URL, else
// base/artifacts/name?mac=MAC (the MAC ties the download to the machine).
func artifactURL(base string, mac net.HardwareAddr, name string) (string, error) {
	if strings.HasPrefix(name, "http://") || strings.HasPrefix(name, "https://") {
		if strings.ContainsAny(name, " \t\r\n") {
			return "", fmt.Errorf("artifact URL %q holds white space", name)
		}
		return name, nil
	}
	clean := path.Clean("/" + name)[1:]
	if clean == "" || clean != name {
		return "", fmt.Errorf("artifact name %q is not a clean relative path", name)
	}
	u := url.URL{Path: "/artifacts/" + clean, RawQuery: "mac=" + mac.String()}
	return base + u.String(), nil
}

// ipxeQuote keeps iPXE from expanding settings in a label.
func ipxeQuote(s string) string {
	if s == "" {
		return "(default)"
	}
	return strings.NewReplacer("$", "", "\n", " ", "\r", " ").Replace(s)
}

// retryScript asks an unknown machine to wait and fetch its script again;
// the request itself registered the machine on the timeline.
func retryScript(base string, wait time.Duration) string {
	secs := int(wait.Seconds())
	if secs < 1 {
		secs = 1
	}
	return fmt.Sprintf(`#!ipxe
echo swarmboot: machine ${mac} is not registered; it is listed by "swarmboot machines".
echo swarmboot: retrying in %d s
sleep %d
chain --replace %s/boot/${mac}.ipxe || reboot
`, secs, secs, base)
}
