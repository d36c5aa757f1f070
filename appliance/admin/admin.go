// Package admin is the appliance's local admin API: HTTP with JSON over a
// unix socket, <data-dir>/admin.sock, which the running appliance
// (appliance/daemon) serves. It lets an operator do day-2 work while the
// appliance holds the store: create a one-time enrollment token, revoke a
// node's certificate, list the enrolled nodes, roll groups of VMs onto a
// new image (appliance/rotate) and read how the latest roll went.
//
// Who may call: the socket is mode 0600 (created that way atomically), so
// only the appliance's own user and root can connect; on top of that,
// every connection's peer credentials (SO_PEERCRED) are checked and any
// uid other than root's and the appliance's is refused with 403.
//
//	POST /v1/tokens  {"mac":"52:54:00:12:34:56","ttl":"2h"} → {"token":…,"expires":…}
//	POST /v1/revoke  {"name":"worker-07"}                    → {"name":…,"revoked":…}
//	GET  /v1/nodes                                           → {"nodes":[…]}
//	POST /v1/rotate  {"groups":[{"group":"workers","image":"worker"}],"timeout":"15m"}
//	                 → progress lines (application/x-ndjson) until {"end":true,"state":…}
//	POST /v1/rotate  {…,"dry_run":true}                      → {"lines":[…]}
//	GET  /v1/rotate                                          → {"rotation":{…},"running":…}
//
// Requests are decoded strictly (unknown fields, trailing data and bodies
// over MaxRequest are refused). A token exists in clear only in the
// response to the call that created it; the store keeps its hash and no
// log line carries it.
//
// Ops runs the same operations on a store directly; the CLI uses it when
// no appliance answers on the socket:
//
//	c := admin.NewClient(admin.SocketPath(dataDir))
//	tok, err := c.CreateToken(ctx, admin.TokenRequest{MAC: mac, TTL: "2h"})
//	if errors.Is(err, admin.ErrNotRunning) { /* open the store, use admin.Ops */ }
package admin
