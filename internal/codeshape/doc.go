// Package codeshape has no code: its tests hold the tree to the shape
// docs/architecture.md describes (which package may import which, file and
// function sizes), so a change that blurs the design fails CI instead of
// waiting for a reviewer to notice.
package codeshape
