// Package e2e holds the end-to-end tests: a real build of a personality
// from the Debian mirror with the applbuild command, a boot of its images
// under QEMU, and the generated configs checked inside the built root
// filesystem by the programs the image ships. They take tens of minutes,
// need root and run only from make e2e (APPLBUILD_SLOW=1).
//
// A test that boots one guest at a time and measures no failover
// (TestE2EPhysicalSCM, TestE2EPhysicalUSB, TestE2EXenWebCluster) calls
// oneGuest: go test runs those two at a time once every other test is
// done, so the second core works while one TCG guest boots on the first.
// Tests that time a failover, boot a pair or check that nothing is left
// behind (chaos) never run beside another.
package e2e
