// Package agent is the behaviour of the swarmboot agent that runs inside
// every booted image: it finds its enrollment token, enrolls with the
// appliance, joins the Docker swarm it is told to, and reports the state of
// the disk behind /var/lib/docker. A manager's agent also does the node
// operations the appliance hands it (nodeops.go), without waiting for a
// heartbeat: it keeps a long poll open for them (poll.go) and reports
// right after its dockerd's node events (events.go).
package agent
