package httpboot

import (
	"net"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// machines serves GET /api/machines: every machine seen, by MAC.
func (h *handlers) machines(c echo.Context) error {
	ms := h.tl.Machines()
	out := make([]timeline.Machine, 0, len(ms))
	for _, m := range ms {
		if len(m.MAC) == 0 {
			continue // events not tied to a machine
		}
		out = append(out, m)
	}
	return c.JSON(http.StatusOK, out)
}

// events serves GET /api/machines/<mac>/events: one machine's timeline.
func (h *handlers) events(c echo.Context) error {
	mac, err := net.ParseMAC(c.Param("mac"))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "want a MAC like 52:54:00:12:34:56")
	}
	ev := h.tl.Events(mac)
	if ev == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no events for "+mac.String()+": the machine has not been seen (see /api/machines)")
	}
	return c.JSON(http.StatusOK, ev)
}
