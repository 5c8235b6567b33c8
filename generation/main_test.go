package generation_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs up to four tests at once unless -parallel says otherwise:
// each owns its redis-server and mostly waits on it and on paced model
// streams, so the default (one a core) leaves a small machine idle; more
// than four starves a viewer on two busy cores until the hub drops it.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}
