package quota

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zoomprov/consumer/internal/leader"
)

// leaderEntry is a key's latest value as the bucket's stream leader has it.
type leaderEntry struct {
	value   []byte
	created time.Time
	seq     uint64 // the key's revision
}

// readLeader reads key from the bucket's stream leader. The bucket's own
// Get may be answered by any replica (key-value buckets allow direct
// reads), and one catching up after a restart answers with an old value:
// an old lease makes a live replica look gone, and its share is then used
// twice. A key that is missing or deleted is jetstream.ErrKeyNotFound.
func (c *Coordinator) readLeader(ctx context.Context, key string) (leaderEntry, error) {
	bucket := c.kv.Bucket()
	m, err := leader.Get(ctx, c.nc, "KV_"+bucket, leader.Query{LastBySubject: "$KV." + bucket + "." + key})
	switch {
	case errors.Is(err, leader.ErrNotFound):
		return leaderEntry{}, jetstream.ErrKeyNotFound
	case err != nil:
		return leaderEntry{}, err // nats.ErrNoResponders: no leader now
	case m.Header.Get("KV-Operation") != "":
		return leaderEntry{}, jetstream.ErrKeyNotFound // deleted or purged
	}
	return leaderEntry{value: m.Data, created: m.Time, seq: m.Seq}, nil
}
