// Package yml reads and writes LinuxKit's image definition format
// (linuxkit.yml): kernel, init, onboot, onshutdown, services, files and
// volumes. Decoding is strict: an unknown key, a value of the wrong type or
// a missing required key is an *Error naming FILE:LINE and saying what is
// expected. Several files merge the way `linuxkit build a.yml b.yml` merges
// them (Merge), and RuntimeConfig turns a container entry plus its image's
// org.mobyproject.config label into the OCI config.json LinuxKit writes.
//
//	c, err := yml.Load("linuxkit/worker.yml", "site.yml")
//	if err != nil {
//		return err // e.g. "worker.yml:41: unknown key "bind" in services[3](sshd); did you mean "binds"?"
//	}
//	for _, ref := range yml.ImageRefs(c) { ... }
package yml
