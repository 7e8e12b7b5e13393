package server

import (
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/threads-server/threads"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Responses on the m3o routes are written by hand rather than by protojson:
// the contract wants every field present, snake_case names and timestamps
// with exactly six fractional digits (protojson picks 0, 3, 6 or 9), and
// the hot path stays free of reflection.

func appendConversation(b []byte, c *pb.Conversation) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, c.GetId())
	b = append(b, `,"group_id":`...)
	b = appendString(b, c.GetGroupId())
	b = append(b, `,"topic":`...)
	b = appendString(b, c.GetTopic())
	b = append(b, `,"created_at":`...)
	b = appendTime(b, c.GetCreatedAt())
	return append(b, '}')
}

func appendMessage(b []byte, m *pb.Message) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, m.GetId())
	b = append(b, `,"author_id":`...)
	b = appendString(b, m.GetAuthorId())
	b = append(b, `,"conversation_id":`...)
	b = appendString(b, m.GetConversationId())
	b = append(b, `,"text":`...)
	b = appendString(b, m.GetText())
	b = append(b, `,"sent_at":`...)
	b = appendTime(b, m.GetSentAt())
	b = append(b, `,"seq":`...)
	b = appendInt(b, m.GetSeq())
	return append(b, '}')
}

func appendConversations(b []byte, cs []*pb.Conversation) []byte {
	b = append(b, '[')
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendConversation(b, c)
	}
	return append(b, ']')
}

func appendMessages(b []byte, ms []*pb.Message) []byte {
	// Grow once to the answer's size at most: RecentMessages' 2,500
	// messages are some 600 KiB, and doubling up to that from the pooled
	// buffer's 16 KiB was an eighth of its CPU; and a page of 16 MiB of
	// tabs, sized by its raw bytes, grew to 8 MiB, then to 16 (the bound
	// escapes as this encoder does; threads.Message.JSONSize).
	n := 0
	for _, m := range ms {
		n += threads.JSONStringSize(m.GetId()) + threads.JSONStringSize(m.GetAuthorId()) +
			threads.JSONStringSize(m.GetConversationId()) + threads.JSONStringSize(m.GetText()) + 120
	}
	b = slices.Grow(b, n+2)
	b = append(b, '[')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessage(b, m)
	}
	return append(b, ']')
}

func appendTime(b []byte, ts *timestamppb.Timestamp) []byte {
	if ts == nil {
		return append(b, `""`...)
	}
	b = append(b, '"')
	b = threads.AppendTime(b, ts.AsTime())
	return append(b, '"')
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string. Control characters, quotes and
// backslashes are escaped; so are U+2028 and U+2029 (valid JSON, but line
// breaks to JavaScript) and any invalid UTF-8 (as U+FFFD), so the output
// is always valid JSON whatever the input.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
