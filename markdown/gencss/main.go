// Command gencss writes the stylesheet of highlighted code blocks
// (static/chroma.css) from the chroma styles the markdown package names.
// Run it through `go generate ./markdown`; a test in markdown fails when
// the committed file is stale.
//
//	go run ./markdown/gencss -o static/chroma.css
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/parley-chat/parley/markdown"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gencss:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gencss", flag.ContinueOnError)
	out := fs.String("o", "", "write the stylesheet to this file (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := markdown.WriteCSS(&buf); err != nil {
		return err
	}
	if *out == "" {
		_, err := os.Stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return nil
}
