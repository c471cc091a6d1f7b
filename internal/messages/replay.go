package messages

// Headers the replay tool (`consumer dlq replay`) sets on the request it
// republishes from a dead letter; the consumer reads them as part of the
// request.
const (
	// HeaderReplayedFrom marks a replayed request with where it came from,
	// "<dead-letter stream>/<sequence>".
	HeaderReplayedFrom = "Replayed-From"
	// HeaderOriginalRequestID holds, on a replayed request, the ID of the
	// request that was dead-lettered.
	HeaderOriginalRequestID = "Original-Request-Id"
)
