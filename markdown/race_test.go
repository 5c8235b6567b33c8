//go:build race

package markdown

// raceEnabled says the race detector runs, which changes allocations.
const raceEnabled = true
