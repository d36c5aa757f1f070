package yml_test

import (
	"fmt"

	"github.com/swarmboot/swarmboot/images/yml"
)

func ExampleParse() {
	_, err := yml.Parse("worker.yml", []byte(`services:
  - name: sshd
    image: linuxkit/sshd:v0.8
    bind: ["/root/.ssh:/root/.ssh"]
`))
	fmt.Println(err)

	c, err := yml.Parse("worker.yml", []byte(`kernel:
  image: linuxkit/kernel:6.6.71
init: [linuxkit/init:v1.0.0]
services:
  - name: sshd
    image: linuxkit/sshd:v0.8
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(yml.ImageRefs(c))
	// Output:
	// worker.yml:4: unknown key "bind" in services[0](sshd); did you mean "binds"?
	// [linuxkit/kernel:6.6.71 linuxkit/init:v1.0.0 linuxkit/sshd:v0.8]
}
