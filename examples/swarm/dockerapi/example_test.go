package dockerapi_test

import (
	"fmt"

	"github.com/masonops/mason/examples/swarm/dockerapi"
)

// An image is built on the controller, without an engine or a registry,
// and loaded into each engine with Client.ImageLoad. The same files give
// the same image ID every time.
func ExampleBuild() {
	img, err := dockerapi.Build(dockerapi.ImageConfig{Cmd: []string{"/hello"}}, []dockerapi.File{
		{Path: "hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hello\n")},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	archive, _ := img.Archive("hello:" + img.ShortID())
	fmt.Println(img.ShortID(), len(archive) > 0)
	// Output: 2834ccd7ed69 true
}
