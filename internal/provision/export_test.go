package provision

import (
	"context"

	"github.com/zoomprov/consumer/internal/zoom"
)

// SetAfterPace makes s run f after each wait for pacing, before the check
// that the delivery still owns its request (its time counts as the
// check's): for tests that act just before a call leaves. Call it before
// Run.
func SetAfterPace(s *Service, f func(context.Context, zoom.Call) error) { s.afterPace = f }
