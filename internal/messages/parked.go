package messages

// Headers of a parked copy: the service stores a request that waits long
// for an earlier one about its user again on the parked subject, and
// acknowledges the original (see package order).
const (
	// HeaderPosition is the sequence the original was stored at: the
	// request's place in its user's order.
	HeaderPosition = "Zoom-Provisioning-Position"
	// HeaderParkedRequestID is the original's request id.
	HeaderParkedRequestID = "Zoom-Provisioning-Request-Id"
	// HeaderParkedSubject is the subject the original was published on.
	HeaderParkedSubject = "Zoom-Provisioning-Subject"
	// HeaderParkedStored is when the stream stored the original
	// (RFC 3339, nanoseconds).
	HeaderParkedStored = "Zoom-Provisioning-Stored"
)
