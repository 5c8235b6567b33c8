package store

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestScriptArgvOrder checks that each argv struct lists its fields in the
// order its Lua file reads them (the struct's lua tags are the names on the
// script's `local ... = unpack(ARGV...)` line) and that list() builds the
// arguments in that same order, so a caller fills named fields and never
// counts positions.
func TestScriptArgvOrder(t *testing.T) {
	t.Parallel()
	unpackLine := regexp.MustCompile(`(?m)^local ([a-z_, ]+) = unpack\(ARGV(?:, (\d+))?\)$`)
	tests := []struct {
		file  string
		argv  argv
		first string // where the script's own ARGV start: "5" after the prelude's
	}{
		{"post", postArgv{}, "5"},
		{"append", appendArgv{}, "5"},
		{"finish", finishArgv{}, "5"},
		{"renew", renewArgv{}, "5"},
		{"expire", expireArgv{}, "5"},
		{"title", titleArgv{}, "5"},
		{"regen", regenArgv{}, "5"},
		{"edit", editArgv{}, "5"},
		{"switch", switchArgv{}, "5"},
		{"continue", continueArgv{}, "5"},
		{"note", noteArgv{}, "5"},
		{"settings", settingsArgv{}, "5"},
		{"delete", deleteArgv{}, "5"},
		{"sweep", sweepArgv{}, ""},
		{"presence", presenceArgv{}, ""},
		{"page", pageArgv{}, ""},
		{"free", freeArgv{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			src := lua(tt.file)
			if !strings.HasPrefix(src, "-- ") || !strings.Contains(src, "\n-- KEYS:") || !strings.Contains(src, "\n-- ARGV:") {
				t.Errorf("lua/%s.lua does not begin with a comment naming its KEYS and ARGV", tt.file)
			}
			m := unpackLine.FindAllStringSubmatch(src, -1)
			if len(m) != 1 {
				t.Fatalf("lua/%s.lua: want one `local ... = unpack(ARGV...)` line, found %d", tt.file, len(m))
			}
			if m[0][2] != tt.first {
				t.Errorf("lua/%s.lua unpacks ARGV from %q, want %q", tt.file, m[0][2], tt.first)
			}
			names := strings.Split(strings.ReplaceAll(m[0][1], " ", ""), ",")

			// Distinct values by field, and what list() makes of them.
			typ := reflect.TypeOf(tt.argv)
			v := reflect.New(typ).Elem()
			var tags []string
			for i := range typ.NumField() {
				f := v.Field(i)
				tags = append(tags, typ.Field(i).Tag.Get("lua"))
				switch f.Kind() {
				case reflect.String:
					f.SetString("field " + typ.Field(i).Name)
				case reflect.Int, reflect.Int64:
					f.SetInt(int64(1000 + i))
				case reflect.Bool:
					f.SetBool(true)
				default:
					t.Fatalf("%s.%s: unexpected kind %s", typ.Name(), typ.Field(i).Name, f.Kind())
				}
			}
			if !reflect.DeepEqual(tags, names) {
				t.Errorf("%s's lua tags %q, lua/%s.lua reads %q", typ.Name(), tags, tt.file, names)
			}
			list := v.Interface().(argv).list()
			if len(list) != typ.NumField() {
				t.Fatalf("%s.list() has %d values for %d fields", typ.Name(), len(list), typ.NumField())
			}
			for i, got := range list {
				if want := v.Field(i).Interface(); got != want {
					t.Errorf("%s.list()[%d] = %v, want field %s (%v)", typ.Name(), i, got, typ.Field(i).Name, want)
				}
			}
		})
	}
}
