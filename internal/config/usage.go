package config

import (
	"fmt"
	"io"
	"strings"
)

// usageWidth is the widest line -h writes: a terminal's.
const usageWidth = 80

// writeUsage writes -h: the settings by group, each with its flag, its
// environment variable and its default, then its help wrapped to
// usageWidth.
func writeUsage(w io.Writer, all []setting) {
	var b strings.Builder
	b.WriteString("Usage: parley [flags]\n\n")
	b.WriteString(wrap("Each setting is a flag whose default comes from its environment variable "+
		"(an empty variable counts as unset); secrets have no flag. "+
		"With no settings at all Parley runs a local demo: an embedded in-memory Redis and an offline demo model.", "", ""))
	for g := Essentials; g <= Tuning; g++ {
		fmt.Fprintf(&b, "\n%s\n\n", g.Title())
		for _, s := range all {
			if s.Group != g {
				continue
			}
			b.WriteString(header(s))
			b.WriteString(wrap(s.Help, "      ", "      "))
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// header is a setting's first line or lines: its flag and type, its
// environment variable and its default, broken between those parts only.
func header(s setting) string {
	var parts []string
	if s.Flag == "" {
		parts = append(parts, "env "+s.Env, "(a secret: no flag)")
	} else {
		name := "-" + s.Flag
		if s.kind != "bool" { // a boolean flag takes no value
			name += " " + s.kind
		}
		parts = append(parts, name, "env "+s.Env)
		if s.Default != "" {
			parts = append(parts, "default "+s.Default)
		}
	}
	var b strings.Builder
	line := "  " + parts[0]
	for _, p := range parts[1:] {
		if len(line)+2+len(p) > usageWidth {
			b.WriteString(line + "\n")
			line = "    " + p
			continue
		}
		line += "  " + p
	}
	b.WriteString(line + "\n")
	return b.String()
}

// wrap breaks text into lines of at most usageWidth columns, the first
// starting with first and the others with rest. A word longer than a line
// stays whole.
func wrap(text, first, rest string) string {
	var b strings.Builder
	line := first
	empty := true
	for _, word := range strings.Fields(text) {
		if !empty && len(line)+1+len(word) > usageWidth {
			b.WriteString(line + "\n")
			line, empty = rest, true
		}
		if !empty {
			line += " "
		}
		line += word
		empty = false
	}
	b.WriteString(line + "\n")
	return b.String()
}
