// Package cli holds the pieces of mason's provisioner front end (mason.Main)
// that no user should import: rendering a plan's DOT to SVG with Graphviz,
// and opening the store a --state URL names.
package cli
