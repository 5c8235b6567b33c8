package main

import (
	"embed"
	"io/fs"
)

// staticFiles holds the CSS and the vendored Datastar client, so the binary
// is all a deployment needs. go:embed can only fill a package variable; it is
// read once, when the app is built (app.go), and passed on from there.
//
//go:embed static
var staticFiles embed.FS

// staticFS returns the embedded static directory.
func staticFS() (fs.FS, error) { return fs.Sub(staticFiles, "static") }
