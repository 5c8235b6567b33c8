package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// readmeHeadings are the README's configuration tables, one a group, in
// Group order.
var readmeHeadings = []string{"### Essentials", "### Limits", "### Tuning and debugging"}

// TestReadmeListsEverySetting keeps the README's configuration tables true:
// every setting, its variable and its flag, is in the table of its group,
// and the tables come essentials first.
func TestReadmeListsEverySetting(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var at []int
	for _, h := range readmeHeadings {
		at = append(at, strings.Index(readme, "\n"+h+"\n"))
	}
	if slices.Contains(at, -1) || !slices.IsSorted(at) {
		t.Fatalf("README.md needs the headings %q, in that order (found at %v)", readmeHeadings, at)
	}
	// A group's table ends where the next group, or the next section, starts.
	end := strings.Index(readme[at[len(at)-1]+1:], "\n## ")
	if end < 0 {
		end = len(readme)
	} else {
		end += at[len(at)-1] + 1
	}
	at = append(at, end)
	all := Settings()
	if len(all) < 20 {
		t.Fatalf("only %d settings", len(all))
	}
	for _, s := range all {
		table := readme[at[s.Group]:at[s.Group+1]]
		if !strings.Contains(table, "`"+s.Env+"`") {
			t.Errorf("README.md's %s table does not list %s", readmeHeadings[s.Group], s.Env)
		}
		if s.Flag != "" && !strings.Contains(table, "`-"+s.Flag+"`") {
			t.Errorf("README.md's %s table does not list -%s", readmeHeadings[s.Group], s.Flag)
		}
	}
}
