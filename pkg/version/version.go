// Package version holds the build's version string, set at link time.
package version

// Version is the swarmboot version. The Makefile sets it with
// -ldflags "-X github.com/swarmboot/swarmboot/pkg/version.Version=...".
var Version = "dev"
