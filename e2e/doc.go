// Package e2e holds end-to-end tests that drive a real Vigil node from the
// outside: the dashboard in a real browser (Debian chromium, driven by the
// npm package playwright-core from the script in browser/).
//
// The browser tests skip, saying why, when chromium, node or the script's
// node_modules are missing; .ci/run installs them, so CI always runs them.
package e2e
