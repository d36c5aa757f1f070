package yml

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Pos is where something was declared: the yml file and line.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.File == "" {
		return "<builtin>"
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Config is a parsed (and possibly merged) linuxkit.yml. Field names and
// keys are LinuxKit's (moby.Moby).
type Config struct {
	Kernel     KernelConfig `yml:"kernel"`
	Init       []string     `yml:"init"`
	Onboot     []*Image     `yml:"onboot"`
	Onshutdown []*Image     `yml:"onshutdown"`
	Services   []*Image     `yml:"services"`
	Files      []File       `yml:"files"`
	Volumes    []*Volume    `yml:"volumes"`

	// Swarmboot holds swarmboot's own settings (key x-swarmboot). LinuxKit
	// rejects the key, so keep it in a separate file merged with -f.
	Swarmboot *Extensions `yml:"x-swarmboot"`

	// InitPos[i] is where Init[i] was declared.
	InitPos []Pos `yml:"-"`
	// Warnings are non-fatal findings (for example an ignored trust section).
	Warnings []string `yml:"-"`
}

// Extensions are swarmboot's settings in a yml (x-swarmboot:).
type Extensions struct {
	// Agent false keeps `swarmboot build` from adding the swarmboot agent
	// service (default true).
	Agent *bool `yml:"agent"`
}

// KernelConfig is the kernel section.
type KernelConfig struct {
	Image   string  `yml:"image"`
	Cmdline string  `yml:"cmdline"`
	Binary  string  `yml:"binary"` // file in the kernel image, default "kernel"
	Tar     *string `yml:"tar"`    // default "kernel.tar"; "none" for no tarball
	UCode   *string `yml:"ucode"`  // CPU microcode cpio in the kernel image, default none

	Pos Pos `yml:"-"`
}

// Image is one entry of onboot, onshutdown or services.
type Image struct {
	Name        string `yml:"name"`
	Image       string `yml:"image"`
	ImageConfig `yml:",inline"`

	Pos Pos `yml:"-"`
}

// ImageConfig is the part of an Image that may also appear in an image's
// org.mobyproject.config label. Pointers distinguish "not set" from "empty":
// a set yml field replaces the label's value.
type ImageConfig struct {
	Capabilities      *[]string               `yml:"capabilities"`
	CapabilitiesAdd   *[]string               `yml:"capabilities.add"`
	Ambient           *[]string               `yml:"ambient"`
	Mounts            *[]specs.Mount          `yml:"mounts"`
	Binds             *[]string               `yml:"binds"`
	BindsAdd          *[]string               `yml:"binds.add"`
	Devices           *[]Device               `yml:"devices"`
	Tmpfs             *[]string               `yml:"tmpfs"`
	Command           *[]string               `yml:"command"`
	Env               *[]string               `yml:"env"`
	Cwd               string                  `yml:"cwd"`
	Net               string                  `yml:"net"`
	Pid               string                  `yml:"pid"`
	Ipc               string                  `yml:"ipc"`
	Uts               string                  `yml:"uts"`
	Userns            string                  `yml:"userns"`
	Hostname          string                  `yml:"hostname"`
	Readonly          *bool                   `yml:"readonly"`
	MaskedPaths       *[]string               `yml:"maskedPaths"`
	ReadonlyPaths     *[]string               `yml:"readonlyPaths"`
	UID               *ID                     `yml:"uid"`
	GID               *ID                     `yml:"gid"`
	AdditionalGids    *[]ID                   `yml:"additionalGids"`
	NoNewPrivileges   *bool                   `yml:"noNewPrivileges"`
	OOMScoreAdj       *int                    `yml:"oomScoreAdj"`
	RootfsPropagation *string                 `yml:"rootfsPropagation"`
	CgroupsPath       *string                 `yml:"cgroupsPath"`
	Resources         *specs.LinuxResources   `yml:"resources"`
	Sysctl            *map[string]string      `yml:"sysctl"`
	Rlimits           *[]string               `yml:"rlimits"`
	UIDMappings       *[]specs.LinuxIDMapping `yml:"uidMappings"`
	GIDMappings       *[]specs.LinuxIDMapping `yml:"gidMappings"`
	Annotations       *map[string]string      `yml:"annotations"`

	Runtime *Runtime `yml:"runtime"`
}

// ImageConfigLabel is the parsed org.mobyproject.config label of an image.
type ImageConfigLabel = ImageConfig

// Device is a device node exposed to a container; Path "all" allows a whole
// Type ("c" or "b") in the device cgroup.
type Device struct {
	Path  string `yml:"path"`
	Type  string `yml:"type"`
	Major int64  `yml:"major"`
	Minor int64  `yml:"minor"`
	Mode  string `yml:"mode"`
}

// Runtime is what linuxkit/init's service runner does around the container
// (runtime.json); it is not part of the OCI spec.
type Runtime struct {
	Cgroups    *[]string      `yml:"cgroups" json:"cgroups,omitempty"`
	Mounts     *[]specs.Mount `yml:"mounts" json:"mounts,omitempty"`
	Mkdir      *[]string      `yml:"mkdir" json:"mkdir,omitempty"`
	Interfaces *[]Interface   `yml:"interfaces" json:"interfaces,omitempty"`
	BindNS     Namespaces     `yml:"bindNS" json:"bindNS,omitempty"`
	Namespace  *string        `yml:"namespace" json:"namespace,omitempty"`
}

// Namespaces are paths to bind a container's namespaces to.
type Namespaces struct {
	Cgroup *string `yml:"cgroup" json:"cgroup,omitempty"`
	Ipc    *string `yml:"ipc" json:"ipc,omitempty"`
	Mnt    *string `yml:"mnt" json:"mnt,omitempty"`
	Net    *string `yml:"net" json:"net,omitempty"`
	Pid    *string `yml:"pid" json:"pid,omitempty"`
	User   *string `yml:"user" json:"user,omitempty"`
	Uts    *string `yml:"uts" json:"uts,omitempty"`
}

// Interface is a network interface the runtime creates or moves.
type Interface struct {
	Name         string `yml:"name" json:"name,omitempty"`
	Add          string `yml:"add" json:"add,omitempty"`
	Peer         string `yml:"peer" json:"peer,omitempty"`
	CreateInRoot bool   `yml:"createInRoot" json:"createInRoot"`
}

// File is one entry of the files section.
type File struct {
	Path      string  `yml:"path"`
	Directory bool    `yml:"directory"`
	Symlink   string  `yml:"symlink"`
	Contents  *string `yml:"contents"`
	Source    string  `yml:"source"`   // host file; relative to the yml's directory, "~/" is $HOME
	Metadata  string  `yml:"metadata"` // "yaml" or "json": the whole config
	Optional  bool    `yml:"optional"`
	Mode      string  `yml:"mode"` // octal, e.g. "0644"
	UID       *ID     `yml:"uid"`
	GID       *ID     `yml:"gid"`

	Pos Pos `yml:"-"`
}

// Volume is one entry of the volumes section.
type Volume struct {
	Name      string   `yml:"name"`
	Image     string   `yml:"image"`
	ReadOnly  bool     `yml:"readonly"`
	Format    string   `yml:"format"`
	Platforms []string `yml:"platforms"`

	Pos Pos `yml:"-"`
}

// ID is a uid or gid: a number, or the name of an onboot/onshutdown/service
// container (each gets an id from 100 up, in LinuxKit's order), or "root".
type ID struct {
	Name string // set when given as a name
	Num  uint32 // set when given as a number
}

// IsName reports whether the id was given as a name.
func (id ID) IsName() bool { return id.Name != "" }

func (id ID) String() string {
	if id.Name != "" {
		return id.Name
	}
	return fmt.Sprint(id.Num)
}
