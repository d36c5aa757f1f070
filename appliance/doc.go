// Package appliance is the swarmboot daemon: configuration, lifecycle, the
// state store, the agent API, fleet reconciliation against vSphere,
// enrollment and swarm coordination. Its subpackages hold each part; this
// package composes them.
package appliance
