package broker_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: the hub's
// sweeper must stop in Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
