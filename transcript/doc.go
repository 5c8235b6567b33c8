// Package transcript writes a conversation's tree (store.Export) as a file
// to download: Markdown to read, JSON to keep or process.
//
// Markdown holds the selected path, as the page shows it: the title, then
// each message under "**You**" or "**Assistant** (model)". A person's text
// is kept exactly as written, in a code fence it cannot end; an answer is
// Markdown already and is kept as the model wrote it, closed if it stopped
// inside a code block (markdown.Closed), with how it ended in italics.
//
// JSON holds every version of every message, the whole tree, in the schema
// documented in docs/export.md. The schema is stable: a field is never
// renamed, dropped or given another meaning; a change that needs one gets
// a new "version". Every field is always present (null or "" when it has
// no value), so a reader never has to guess whether something was left
// out. The owner's ID is never written: it identifies a browser's session.
package transcript
