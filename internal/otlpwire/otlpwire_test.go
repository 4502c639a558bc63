package otlpwire

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestNextReadsEveryWireType(t *testing.T) {
	var b []byte
	b = binary.AppendUvarint(b, 1<<3|uint64(Varint))
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendUvarint(b, 2<<3|uint64(Fixed64))
	b = binary.LittleEndian.AppendUint64(b, 0x0102030405060708)
	b = binary.AppendUvarint(b, 3<<3|uint64(Fixed32))
	b = binary.LittleEndian.AppendUint32(b, 7)
	b = binary.AppendUvarint(b, 4<<3|uint64(Bytes))
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	long := bytes.Repeat([]byte{'x'}, 200) // a two-byte length
	b = binary.AppendUvarint(b, 1000<<3|uint64(Bytes))
	b = binary.AppendUvarint(b, uint64(len(long)))
	b = append(b, long...)

	want := []Field{
		{Num: 1, Type: Varint, Value: 300},
		{Num: 2, Type: Fixed64, Value: 0x0102030405060708},
		{Num: 3, Type: Fixed32, Value: 7},
		{Num: 4, Type: Bytes, Data: []byte("abc")},
		{Num: 1000, Type: Bytes, Data: long},
	}
	for i, w := range want {
		f, rest, ok := Next(b)
		if !ok || f.Num != w.Num || f.Type != w.Type || f.Value != w.Value || !bytes.Equal(f.Data, w.Data) {
			t.Fatalf("field %d: got %+v (ok %v), want %+v", i, f, ok, w)
		}
		b = rest
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
}

func TestNextRefusesMalformedFields(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":              {},
		"field 0":            {0x02, 0x00},
		"group":              {0x0b},
		"truncated varint":   {0x08, 0x80},
		"truncated fixed64":  {0x09, 1, 2, 3},
		"truncated fixed32":  {0x0d, 1},
		"length past end":    {0x0a, 0x05, 'a'},
		"huge length":        {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"varint overflow":    {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"field beyond 2^29":  binary.AppendUvarint(nil, (1<<29)<<3|uint64(Varint)),
		"truncated tag":      {0x80},
		"one-byte len short": {0x0a, 0x02, 'a'},
	} {
		if f, _, ok := Next(b); ok {
			t.Errorf("%s: read %+v", name, f)
		}
	}
}

func TestPackedFixed64(t *testing.T) {
	data := binary.LittleEndian.AppendUint64(nil, 5)
	data = binary.LittleEndian.AppendUint64(data, 0x4000000000000000) // 2.0
	if n, ok := PackedFixed64(data); !ok || n != 2 || Fixed64At(data, 0) != 5 || DoubleAt(data, 1) != 2 {
		t.Fatalf("n %d ok %v: %d %v", n, ok, Fixed64At(data, 0), DoubleAt(data, 1))
	}
	if _, ok := PackedFixed64(data[:9]); ok {
		t.Fatal("a length that is not a multiple of 8 was accepted")
	}
}

// The inline path for short length-delimited fields reads what the
// general one reads.
func FuzzNext(f *testing.F) {
	f.Add([]byte{0x0a, 0x03, 'a', 'b', 'c'})
	f.Add([]byte{0x09, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0x12, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		f1, r1, ok1 := Next(b)
		f2, r2, ok2 := next(b)
		if ok1 != ok2 || f1.Num != f2.Num || f1.Type != f2.Type || f1.Value != f2.Value ||
			!bytes.Equal(f1.Data, f2.Data) || !bytes.Equal(r1, r2) {
			t.Fatalf("Next %+v %v %x, next %+v %v %x", f1, ok1, r1, f2, ok2, r2)
		}
	})
}

// A length that needs more or fewer bytes than reserved moves the body, and
// what is written reads back.
func TestEndMessageFitsAnyLength(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21} {
		for _, reserve := range []int{0, 2, 3, 5} {
			b, start := BeginMessage([]byte{0xff}, 2, reserve)
			body := bytes.Repeat([]byte{7}, n)
			b = EndMessage(append(b, body...), start, reserve)
			want := append(AppendLenField([]byte{0xff}, 2, n), body...)
			if !bytes.Equal(b, want) {
				t.Fatalf("length %d with %d bytes reserved: encoded wrongly", n, reserve)
			}
			if f, rest, ok := Next(b[1:]); !ok || f.Num != 2 || !bytes.Equal(f.Data, body) || len(rest) != 0 {
				t.Fatalf("length %d with %d bytes reserved: does not read back", n, reserve)
			}
		}
	}
}
