// Package cli holds the pieces of mason's provisioner front end (mason.Main)
// that no user should import: the progress display and JSON lines written
// during apply, the DOT drawing of a plan, and opening the store a --state
// URL names.
package cli
