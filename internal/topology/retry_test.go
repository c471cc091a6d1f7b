package topology_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/topology"
)

// Ensure a bind waits out an election (no responders, no answer in time)
// but gives up at once on an error that stays: a replica started while a
// node is down must not exit, and a missing consumer must still say so.
func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name      string
		errs      []error // one per try; after them, success
		wantTries int
		wantErr   error
	}{
		{"election", []error{nats.ErrNoResponders, context.DeadlineExceeded, jetstream.ErrNoStreamResponse}, 4, nil},
		{"unavailable", []error{&jetstream.APIError{Code: 503, ErrorCode: 10008}}, 2, nil},
		{"not found", []error{jetstream.ErrConsumerNotFound}, 1, jetstream.ErrConsumerNotFound},
		{"at once", nil, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			err := topology.Retry(context.Background(), func(ctx context.Context) error {
				tries++
				if _, ok := ctx.Deadline(); !ok {
					t.Error("a try has no deadline")
				}
				if tries <= len(tc.errs) {
					return tc.errs[tries-1]
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Retry = %v; want %v", err, tc.wantErr)
			}
			if tries != tc.wantTries {
				t.Errorf("tries = %d; want %d", tries, tc.wantTries)
			}
		})
	}
}
