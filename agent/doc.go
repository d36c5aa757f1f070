// Package agent is the behaviour of the swarmboot agent that runs inside
// every booted image: it finds its enrollment token, enrolls with the
// appliance, joins the Docker swarm it is told to, and reports the state of
// the disk behind /var/lib/docker.
package agent
