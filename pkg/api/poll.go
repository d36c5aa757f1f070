package api

import "time"

// PathOps is the node-operations long poll: GET with a client certificate
// (mutual TLS), only for an active manager the appliance made manager.
// The appliance holds the request open until it has operations for that
// manager (200, a ReportAnswer with Ops) or the wait ends (204 No
// Content: ask again). The agent answers the operations as it does those
// of a report's answer: in its next report, sent at once. An appliance
// older than the poll answers 404 and the agent keeps to its heartbeat.
//
// Refusals: 401/403 as every /v1/node/ call; 409 Conflict for a node that
// is not an active manager of a swarmboot-made swarm (ask again after a
// heartbeat); 429 Too Many Requests when MaxPollsPerNode polls of the
// node wait already; 503 while the appliance shuts down.
const PathOps = "/v1/node/ops"

// PollWaitParam is the query parameter with the longest wait the agent
// wants, a Go duration ("25s"); the appliance holds a poll at most
// MaxPollWait, and DefaultPollWait when the parameter is missing.
const PollWaitParam = "wait"

// Bounds of the long poll.
const (
	DefaultPollWait = 25 * time.Second
	MaxPollWait     = 25 * time.Second // under the 30 s both sides allow one HTTP exchange
	MaxPollsPerNode = 2
)
