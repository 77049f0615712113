//go:build !cgo

package sqlite

// The package runs the SQLite C library through cgo (decision 40): a build
// with CGO_ENABLED=0, which is Go's default when it finds no C compiler,
// stops here, naming what it needs.
var _ = this_package_needs_cgo_set_CGO_ENABLED_1_and_install_a_C_compiler
