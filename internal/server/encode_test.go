package server

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pb "github.com/threads-server/threads/internal/gen/threadspb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestM3OEncodersMatchProtoJSON: for every method's response message, the
// hand-written m3o encoder writes what protojson writes (proto names,
// unpopulated fields emitted), once integers and timestamps are put in the
// m3o form (numbers; six fractional digits). A field added to a response
// in the proto and left out of the encoder fails here. Every field is
// filled, with two elements in each list.
func TestM3OEncodersMatchProtoJSON(t *testing.T) {
	s := New(Config{})
	methods := pb.File_threads_proto.Services().ByName("Threads").Methods()
	for i := range methods.Len() {
		m := methods.Get(i)
		res := filled(t, m.Output())
		var got []byte
		if m.IsStreamingServer() {
			got = appendEvent(nil, res.(*pb.Event)) // the SSE data line
		} else {
			got = s.m3o[string(m.Name())].encode(nil, res)
		}
		want, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m3oForm(t, want), decodeJSON(t, got)); diff != "" {
			t.Errorf("%s: the m3o encoding of %s differs from protojson's (-protojson +m3o):\n%s", m.Name(), m.Output().Name(), diff)
		}
	}
}

func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

var protoTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`)

// m3oForm decodes protojson's output and puts it in the m3o form:
// 64-bit integers (quoted by protojson) as numbers, timestamps with
// exactly six fractional digits.
func m3oForm(t *testing.T, b []byte) any {
	t.Helper()
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				v[k] = walk(x)
			}
		case []any:
			for i, x := range v {
				v[i] = walk(x)
			}
		case string:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return float64(n)
			}
			if protoTime.MatchString(v) {
				ts, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					t.Fatal(err)
				}
				return ts.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
			}
		}
		return v
	}
	return walk(decodeJSON(t, b))
}

// filled returns a message of type md with every field set: strings name
// their field, integers count up, timestamps are whole microseconds,
// nested messages are filled in turn, lists hold two elements.
func filled(t *testing.T, md protoreflect.MessageDescriptor) proto.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var fill func(m protoreflect.Message, depth int)
	value := func(m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int, list protoreflect.List) protoreflect.Value {
		n++
		switch fd.Kind() {
		case protoreflect.StringKind:
			return protoreflect.ValueOfString(fmt.Sprintf("%s-%d \"q\" \t", fd.Name(), n))
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return protoreflect.ValueOfInt64(int64(n) * 1_000_000_007)
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			return protoreflect.ValueOfInt32(int32(n))
		case protoreflect.BoolKind:
			return protoreflect.ValueOfBool(true)
		case protoreflect.MessageKind:
			var sub protoreflect.Message
			if list != nil {
				sub = list.NewElement().Message()
			} else {
				sub = m.NewField(fd).Message()
			}
			if fd.Message().FullName() == "google.protobuf.Timestamp" {
				ts := timestamppb.New(time.Date(2026, 11, 25, 6, 2, 51, n*1000, time.UTC))
				return protoreflect.ValueOfMessage(ts.ProtoReflect())
			}
			fill(sub, depth+1)
			return protoreflect.ValueOfMessage(sub)
		}
		t.Fatalf("filled: field %s of kind %s: teach this test the kind", fd.FullName(), fd.Kind())
		return protoreflect.Value{}
	}
	fill = func(m protoreflect.Message, depth int) {
		if depth > 4 {
			return
		}
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.IsList() {
				l := m.Mutable(fd).List()
				for range 2 {
					l.Append(value(m, fd, depth, l))
				}
				continue
			}
			m.Set(fd, value(m, fd, depth, nil))
		}
	}
	msg := mt.New()
	fill(msg, 0)
	return msg.Interface()
}
