// Package e2e holds the end-to-end tests: a real build of a personality
// from the Debian mirror with the applbuild command, a boot of its images
// under QEMU, and the generated configs checked inside the built root
// filesystem by the programs the image ships. They take tens of minutes,
// need root and run only from make e2e (APPLBUILD_SLOW=1).
package e2e
