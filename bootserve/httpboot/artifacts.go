package httpboot

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/swarmboot/swarmboot/bootserve/internal/safefile"
	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// artifact serves GET/HEAD /artifacts/<name>[?mac=MAC].
func (h *handlers) artifact(c echo.Context) error {
	if h.artifacts == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no artifacts directory is served (start with --artifacts DIR)")
	}
	return h.serveFile(c, h.artifacts, c.Param("*"), true)
}

// loader serves boot loaders at the top level (UEFI HTTP boot fetches
// e.g. /ipxe.efi).
func (h *handlers) loader(c echo.Context) error {
	if h.loaders == nil {
		return echo.NewHTTPError(http.StatusNotFound, "not found")
	}
	return h.serveFile(c, h.loaders, c.Param("file"), false)
}

func (h *handlers) serveFile(c echo.Context, dir *safefile.Dir, name string, artifact bool) error {
	req := c.Request()
	// The router hands the name over escaped: unescape once, and refuse
	// names that still carry escapes (double encoding) rather than guess.
	name, err := url.PathUnescape(name)
	if err != nil || strings.Contains(name, "%") {
		h.m.refused.WithLabelValues("artifact").Inc()
		return echo.NewHTTPError(http.StatusBadRequest, "escaped characters in artifact names are not allowed")
	}
	f, fi, err := dir.Open(name)
	if err != nil {
		if errors.Is(err, safefile.ErrNotFound) {
			return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("artifact %q not found: run `swarmboot build -o DIR` and serve DIR with --artifacts", name))
		}
		h.m.refused.WithLabelValues("artifact").Inc()
		h.log.Warn("http path refused", "path", req.URL.Path, "ip", clientIP(c).String(), "reason", err)
		return echo.NewHTTPError(http.StatusForbidden, "path refused")
	}
	defer f.Close()
	ip := clientIP(c)
	var mac net.HardwareAddr
	if m, err := net.ParseMAC(c.QueryParam("mac")); err == nil {
		mac = m
	} else if h.s.Resolve != nil && ip != nil {
		mac = h.s.Resolve(ip)
	}
	kind := kindOf(name)
	w := &countingWriter{r: c.Response()}
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	w.Header().Set("Accept-Ranges", "bytes")
	start := time.Now()
	http.ServeContent(w, req, "", fi.ModTime(), f)
	if artifact {
		h.m.artifactBytes.WithLabelValues(string(kindLabel(kind))).Add(float64(w.n))
	}
	status := c.Response().Status
	log := h.log.With("path", req.URL.Path, "ip", ip.String(), "status", status, "bytes", w.n,
		"duration", time.Since(start).Round(time.Millisecond))
	if mac != nil {
		log = log.With("mac", mac.String())
	}
	log.Info("http artifact")
	if req.Method != http.MethodGet || status >= 300 || kind == "" {
		return nil
	}
	detail := name
	if r := req.Header.Get("Range"); r != "" {
		detail += " " + r
	}
	full := w.n == fi.Size()
	if !full {
		detail += fmt.Sprintf(" (%d of %d bytes)", w.n, fi.Size())
	}
	h.record(timeline.Event{MAC: mac, IP: ip, Kind: kind, Detail: detail})
	if kind == timeline.Initrd && full && mac != nil {
		h.m.finished(mac)
	}
	return nil
}

// kindOf names the timeline step of an artifact from swarmboot build's
// file names (NAME-kernel, NAME-initrd.img, NAME.iso); "" for others.
func kindOf(name string) timeline.Kind {
	base := name[strings.LastIndex(name, "/")+1:]
	switch {
	case strings.Contains(base, "initrd"):
		return timeline.Initrd
	case strings.HasSuffix(base, ".iso"):
		return timeline.ISO
	case strings.Contains(base, "kernel"), strings.Contains(base, "vmlinuz"), strings.Contains(base, "bzImage"):
		return timeline.Kernel
	}
	return ""
}

func kindLabel(k timeline.Kind) timeline.Kind {
	if k == "" {
		return "other"
	}
	return k
}

// countingWriter counts body bytes and keeps the sendfile path: net/http's
// response implements io.ReaderFrom (sendfile for *os.File), echo's
// Response wrapper does not, so ReadFrom goes to the underlying writer.
type countingWriter struct {
	r *echo.Response
	n int64
}

func (w *countingWriter) Header() http.Header  { return w.r.Header() }
func (w *countingWriter) WriteHeader(code int) { w.r.WriteHeader(code) }

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.r.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.r.Committed {
		w.r.WriteHeader(http.StatusOK)
	}
	rf, ok := w.r.Writer.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	n, err := rf.ReadFrom(src)
	w.n += n
	w.r.Size += n
	return n, err
}
