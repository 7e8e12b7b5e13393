package threads

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Bounds of a message's or a conversation's metadata (docs/api.md when
// the methods that take it are served).
const (
	MaxMetadataBytes = 16 * 1024 // its JSON, without insignificant whitespace
	MaxMetadataKeys  = 64        // its members
)

// ValidateMetadata checks a client's metadata, kept as its JSON text: a
// JSON object (not null, an array or a scalar), valid UTF-8, at most
// MaxMetadataBytes once insignificant whitespace is left out (the client's
// layout does not count), and at most MaxMetadataKeys members (a name
// repeated counts once: the last one is the value, as in any JSON object
// read by Go). Anything else is BAD_REQUEST.
func ValidateMetadata(m json.RawMessage) error {
	if !utf8.Valid(m) {
		return Errorf(EBADREQUEST, "metadata is not valid UTF-8")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(m, &members); err != nil || members == nil {
		return Errorf(EBADREQUEST, "metadata must be a JSON object")
	}
	if len(m) > MaxMetadataBytes {
		var compact bytes.Buffer
		if err := json.Compact(&compact, m); err != nil || compact.Len() > MaxMetadataBytes {
			return Errorf(EBADREQUEST, "metadata is longer than %d bytes", MaxMetadataBytes)
		}
	}
	if len(members) > MaxMetadataKeys {
		return Errorf(EBADREQUEST, "metadata has %d keys, at most %d are allowed", len(members), MaxMetadataKeys)
	}
	return nil
}
