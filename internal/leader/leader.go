// Package leader reads messages from a stream's leader. Stream.GetMsg and a
// key-value bucket's Get are answered by any replica when the stream allows
// direct gets, and a replica catching up answers with old data: a request
// just stored looks absent, a lease just renewed looks old. Decisions that
// must see the latest state (the per-user order, replica leases) read here.
package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound reports that no message matches the query.
var ErrNotFound = errors.New("leader: no such message")

// Msg is a stored message.
type Msg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
	// Time is when the stream stored it, on the server's clock.
	Time time.Time
}

// Query selects one message: the one at Seq; with NextBySubject, the
// first at or after Seq on that subject (wildcards allowed); with
// LastBySubject, the last on that subject.
type Query struct {
	Seq           uint64 `json:"seq,omitempty"`
	NextBySubject string `json:"next_by_subj,omitempty"`
	LastBySubject string `json:"last_by_subj,omitempty"`
}

// Get reads the message q selects from stream's leader, through the
// JetStream API on nc (the non-direct get, which only the leader
// answers). It returns ErrNotFound when there is none, and
// nats.ErrNoResponders while the stream has no leader.
func Get(ctx context.Context, nc *nats.Conn, stream string, q Query) (Msg, error) {
	req, err := json.Marshal(q)
	if err != nil {
		return Msg{}, err
	}
	reply, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return Msg{}, err
	}
	var resp struct {
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return Msg{}, fmt.Errorf("leader: read %s: %w", stream, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return Msg{}, ErrNotFound
	case resp.Error != nil:
		return Msg{}, fmt.Errorf("leader: read %s: %w", stream, resp.Error)
	case resp.Message == nil:
		return Msg{}, fmt.Errorf("leader: read %s: empty answer", stream)
	}
	m := Msg{Subject: resp.Message.Subject, Seq: resp.Message.Seq, Data: resp.Message.Data, Time: resp.Message.Time}
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return Msg{}, fmt.Errorf("leader: read %s: headers: %w", stream, err)
		}
	}
	return m, nil
}
