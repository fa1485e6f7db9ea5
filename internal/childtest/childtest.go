// Package childtest lets a test binary act as a child process of its own
// tests (a controller that the test kills, a lab that a new process tears
// down) without a fake test that skips in normal runs.
//
// A package's TestMain checks an environment variable, and if it is set
// runs the child's code instead of the tests:
//
//	func TestMain(m *testing.M) {
//		childtest.Dispatch(map[string]func(childtest.T){workerEnv: workerProcess})
//		os.Exit(m.Run())
//	}
//
// T satisfies testify's require.TestingT, so the child's code reads like
// a test; a failed requirement prints the failure and exits with status 1,
// which the parent test sees.
package childtest

import (
	"fmt"
	"os"
)

// T reports failures of a child process.
type T struct{}

// Errorf prints a failure to standard error.
func (T) Errorf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// FailNow ends the child with exit status 1.
func (T) FailNow() { os.Exit(1) }

// Logf prints to standard output, as t.Logf does for a verbose test.
func (T) Logf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// Helper does nothing; it lets helpers written for *testing.T accept a T.
func (T) Helper() {}

// Dispatch runs the child registered under the first environment variable
// that is set, then exits 0. It returns when none is set: a normal test run.
func Dispatch(children map[string]func(T)) {
	for env, child := range children {
		if os.Getenv(env) != "" {
			child(T{})
			os.Exit(0)
		}
	}
}
