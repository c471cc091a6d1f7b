package quota

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
// twice (a cluster chaos run: 20 calls answered 429 in one second). A
// key that is missing or deleted is jetstream.ErrKeyNotFound.
func (c *Coordinator) readLeader(ctx context.Context, key string) (leaderEntry, error) {
	bucket := c.kv.Bucket()
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + key})
	msg, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return leaderEntry{}, err // nats.ErrNoResponders: no leader now
	}
	var resp struct {
		Message *struct {
			Header []byte    `json:"hdrs"`
			Data   []byte    `json:"data"`
			Seq    uint64    `json:"seq"`
			Time   time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return leaderEntry{}, fmt.Errorf("quota: read %s: %w", key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return leaderEntry{}, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return leaderEntry{}, fmt.Errorf("quota: read %s: %w", key, resp.Error)
	case resp.Message == nil:
		return leaderEntry{}, fmt.Errorf("quota: read %s: empty answer", key)
	}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err == nil && h.Get("KV-Operation") != "" {
			return leaderEntry{}, jetstream.ErrKeyNotFound // deleted or purged
		}
	}
	return leaderEntry{value: resp.Message.Data, created: resp.Message.Time, seq: resp.Message.Seq}, nil
}
