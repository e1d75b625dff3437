// Package archtest holds the import rules of gstcapture's packages, as one
// table in a test that reads the import graph `go list -deps -json` reports
// and fails on any import a rule forbids, naming the package, the import
// and the chain that leads to it. docs/architecture.md states the same
// rules in prose.
//
// It has no code outside its test and may import nothing from gstcapture;
// the test itself uses the standard library and testify.
package archtest
