package cli

// machines and events: the boot timeline as a running appliance's HTTP
// server (or the lab's --listen forward) answers it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmboot/swarmboot/bootserve/timeline"
)

// addServerFlag adds --server: $SWARMBOOT_SERVER or http://127.0.0.1:8080.
func addServerFlag(cmd *cobra.Command, p *string) {
	def := os.Getenv("SWARMBOOT_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.Flags().StringVar(p, "server", def, "HTTP address of the running `swarmboot serve` ($SWARMBOOT_SERVER)")
}

func getJSON(ctx context.Context, base, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimRight(base, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("--server %q: %w", base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w (is `swarmboot serve` running? set --server)", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}

func newMachinesCmd(g *Globals) *cobra.Command {
	var server string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "machines",
		Short: "List the machines a running `swarmboot serve` has seen",
		Long: `machines asks a running "swarmboot serve" (its HTTP API, /api/machines) for
every machine that has sent a DHCP request or fetched a file, with its last
step. Unknown machines show up here after their first attempt.

Examples:
  swarmboot machines
  swarmboot machines --server http://10.77.0.1:8080 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ms []timeline.Machine
			if err := getJSON(cmd.Context(), server, "/api/machines", &ms); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.Stdout).Encode(ms)
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tIP\tLAST STEP\tDETAIL\tWHEN\tEVENTS")
			for _, m := range ms {
				ip := ""
				if m.Last.IP != nil {
					ip = m.Last.IP.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", m.MAC, ip, m.Last.Kind, m.Last.Detail,
					m.Last.Time.Local().Format(time.TimeOnly), m.Events)
			}
			return tw.Flush()
		},
	}
	addServerFlag(cmd, &server)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newEventsCmd(g *Globals) *cobra.Command {
	var server string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events MAC",
		Short: "Show one machine's boot timeline from a running `swarmboot serve`",
		Long: `events prints every step a machine went through, oldest first: DHCP
discover/offer/request/ack, TFTP files, the iPXE script, kernel and initrd
downloads (and, with the appliance, enroll/join/report).

Examples:
  swarmboot events 52:54:00:12:34:56
  swarmboot events 52-54-00-12-34-56 --server http://10.77.0.1:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mac, err := net.ParseMAC(args[0])
			if err != nil {
				return fmt.Errorf("%q is not a MAC address (want e.g. 52:54:00:12:34:56)", args[0])
			}
			var ev []timeline.Event
			if err := getJSON(cmd.Context(), server, "/api/machines/"+url.PathEscape(mac.String())+"/events", &ev); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(g.Stdout).Encode(ev)
			}
			tw := tabwriter.NewWriter(g.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSTEP\tIP\tARCH\tDETAIL")
			for _, e := range ev {
				ip := ""
				if e.IP != nil {
					ip = e.IP.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("15:04:05.000"), e.Kind, ip, e.Arch, e.Detail)
			}
			return tw.Flush()
		},
	}
	addServerFlag(cmd, &server)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
