package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zoomprov/consumer/internal/leader"
)

// batchSize is the most messages one batched read asks for.
const batchSize = 256

// directRetry is how long the index reads one message at a time after a
// batched read failed (a stream without direct gets, a user not allowed
// them, a server that does not batch), before it tries again.
const directRetry = time.Minute

// errNotBatch reports an answer without the batch's headers: a server
// older than 2.11 answers a batched direct get with one message.
var errNotBatch = errors.New("order: the server does not read in batches")

// readBatch reads up to n stored messages at or after seq, in stream
// order, in one direct get, which any replica of the stream may answer.
//
// Why that is safe where single reads are not: a replica stores a message
// only once it is committed, and in stream order. A replica that answers
// with message s therefore holds every message stored at or below s that
// is still in the stream; one it lacks below s was removed (an
// acknowledged request, whose removal it may apply before the leader
// does). So the answer is complete up to the last sequence it holds, and
// says nothing about what lies beyond: a lagging replica answers with
// fewer messages, never with a gap. An empty answer proves nothing, and
// the caller asks the leader.
func (x *Index) readBatch(ctx context.Context, seq uint64, n int) ([]leader.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	req, err := json.Marshal(struct {
		Seq           uint64 `json:"seq"`
		NextBySubject string `json:"next_by_subj"`
		Batch         int    `json:"batch"`
	}{seq, ">", n})
	if err != nil {
		return nil, err
	}
	inbox := x.nc.NewInbox()
	sub, err := x.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := x.nc.PublishRequest("$JS.API.DIRECT.GET."+x.stream, inbox, req); err != nil {
		return nil, err
	}
	var out []leader.Msg
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 {
			x.mu.Lock()
			x.reads++
			x.mu.Unlock()
		}
		switch m.Header.Get("Status") {
		case "":
		case "204": // the end of the batch
			return out, nil
		case "404":
			return out, nil
		case "503":
			return nil, nats.ErrNoResponders
		default:
			return nil, fmt.Errorf("order: batched read of %s: %s %s", x.stream, m.Header.Get("Status"), m.Header.Get("Description"))
		}
		if m.Header.Get("Nats-Num-Pending") == "" {
			return nil, errNotBatch
		}
		s, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil || s < seq || (len(out) > 0 && s <= out[len(out)-1].Seq) {
			return nil, fmt.Errorf("order: batched read of %s: sequence %q out of order", x.stream, m.Header.Get("Nats-Sequence"))
		}
		out = append(out, leader.Msg{Subject: m.Header.Get("Nats-Subject"), Seq: s, Header: m.Header, Data: m.Data})
	}
}

// batchOff reports whether batched reads are off for now.
func (x *Index) batchOff() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return !x.noBatchUntil.IsZero() && time.Now().Before(x.noBatchUntil)
}

// turnBatchOff turns batched reads off for directRetry.
func (x *Index) turnBatchOff() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.noBatchUntil = time.Now().Add(directRetry)
}
