// Package swarmboot is the root of the swarmboot module: a boot-serving
// appliance for Docker Swarm on VMware vSphere. The code lives in appliance/,
// agent/, bootserve/, images/, pkg/ and cmd/; see README.md.
package swarmboot
