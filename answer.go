package threads

import "unicode/utf8"

// MaxAnswerBytes bounds one answer: no list is larger than this in JSON,
// and no request holds more than about this much of what it read. Lists
// are bounded by count as well, but a count is no bound on bytes: 200
// messages of 64 KiB of tabs are 25 MiB of JSON, and RecentMessages asks
// for up to 100 × 200 of them, which once took 12 GB to answer one 4 KB
// request. A page that would pass the bound ends early; an answer that
// cannot be cut is TOO_LARGE (ErrAnswerTooLarge).
const MaxAnswerBytes = 16 << 20

// ErrAnswerTooLarge answers a RecentMessages call whose messages would
// pass MaxAnswerBytes: its answer has no page to end early.
var ErrAnswerTooLarge = Errorf(ETOOLARGE,
	"the answer would be larger than %d MiB of JSON; ask for fewer conversation_ids or a smaller limit_per_conversation", MaxAnswerBytes>>20)

// AnswerBudget counts the JSON size of the items a listing has read
// against MaxAnswerBytes. Stores consult it row by row, so that what a
// request holds stays bounded however large the rows are.
type AnswerBudget struct{ used int }

// Take counts an item of n bytes and reports whether the answer still
// fits. The first item always fits, so a page is never empty because of
// the bound (one message is at most a few hundred KiB).
func (b *AnswerBudget) Take(n int) bool {
	first := b.used == 0
	b.used += n
	return first || b.used <= MaxAnswerBytes
}

// messageJSONOverhead is a message's JSON besides its strings: the keys,
// quotes and punctuation, the time and the seq, with room to spare.
const messageJSONOverhead = 160

// JSONSize returns an upper bound of m's size in any of the API's JSON
// forms (the m3o routes, Connect's protojson, the event stream), for a
// message as stored: valid UTF-8 with no control character but tab,
// newline and carriage return (Validate), so that no byte escapes to more
// than two (a tab, a quote, a backslash; U+2028's three bytes to six). It
// reads no byte of the strings: every page pays it once per message, and
// scanning them cost a sixth of a page of short messages.
func (m *Message) JSONSize() int {
	return messageJSONOverhead + 2*(len(m.ID)+len(m.AuthorID)+len(m.ConversationID)+len(m.Text))
}

// JSONStringSize returns an upper bound of the length of s as a quoted
// JSON string, as the encoders the API uses escape it: two bytes for a
// quote, a backslash, a tab, a newline or a carriage return; six for any
// other control character, for U+2028 and U+2029, and for a byte that is
// not UTF-8 (written as \ufffd). Every page read pays it once per string,
// so the common case is a table lookup per byte.
func JSONStringSize(s string) int {
	if !utf8.ValidString(s) {
		return jsonStringSizeInvalid(s)
	}
	n := 2 + len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		n += int(jsonExtra[c])
		// U+2028 and U+2029 are E2 80 A8 and E2 80 A9 (three bytes, six
		// escaped).
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9) {
			n += 3
		}
	}
	return n
}

// jsonExtra is what each ASCII byte adds to its one byte when escaped.
var jsonExtra = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = 5 // \u00XX
	}
	for _, c := range []byte{'"', '\\', '\t', '\n', '\r'} {
		t[c] = 1
	}
	return t
}()

// jsonStringSizeInvalid is JSONStringSize for a string that is not valid
// UTF-8 (stored data never is: it is checked before it is stored).
func jsonStringSizeInvalid(s string) int {
	n := 2
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
			n += 6
		case r < utf8.RuneSelf:
			n += 1 + int(jsonExtra[r])
		default:
			n += size
		}
		i += size
	}
	return n
}
