package mllp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll reads every frame of in, with max as the limit.
func readAll(in io.Reader, max int) (frames []string, err error) {
	r := NewReader(in)
	for {
		if err := r.WaitFrame(); err != nil {
			if errors.Is(err, io.EOF) {
				return frames, nil
			}
			return frames, err
		}
		b, err := r.ReadBody(max)
		if err != nil {
			return append(frames, string(b)), err
		}
		frames = append(frames, string(b))
	}
}

func TestReadFrames(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{"one", "\x0bMSH|a\r\x1c\r", 100, []string{"MSH|a\r"}, nil},
		{"two in one read", "\x0bA\x1c\r\x0bB\x1c\r", 100, []string{"A", "B"}, nil},
		{"newline between frames", "\x0bA\x1c\r\n\x0bB\x1c\r\n", 100, []string{"A", "B"}, nil},
		{"end without CR", "\x0bA\x1c\x0bB\x1c", 100, []string{"A", "B"}, nil},
		{"empty frame", "\x0b\x1c\r", 100, []string{""}, nil},
		{"junk before frame", "GET / HTTP/1.1\r\n", 100, nil, ErrFraming},
		{"start inside frame", "\x0bA\x0bB\x1c\r", 100, nil, ErrFraming},
		{"ends inside frame", "\x0bABC", 100, nil, io.ErrUnexpectedEOF},
		{"too large", "\x0b" + strings.Repeat("x", 50) + "\x1c\r\x0bB\x1c\r", 10, []string{strings.Repeat("x", 10)}, ErrTooLarge},
		{"never ends", "\x0b" + strings.Repeat("x", 2000), 10, nil, ErrFraming},
		{"exactly max", "\x0b0123456789\x1c\r", 10, []string{"0123456789"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per read: frames split across reads everywhere.
			for _, in := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAll(in, tc.max)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Errorf("frames = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// TestTooLargeThenNext: after an over-large frame the reader is at the
// next frame.
func TestTooLargeThenNext(t *testing.T) {
	r := NewReader(strings.NewReader("\x0b" + strings.Repeat("x", 50) + "\x1c\r\x0bB\x1c\r"))
	if err := r.WaitFrame(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadBody(10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if err := r.WaitFrame(); err != nil {
		t.Fatal(err)
	}
	b, err := r.ReadBody(10)
	if err != nil || string(b) != "B" {
		t.Fatalf("next frame = %q, %v; want B", b, err)
	}
}

func TestAppendFrameRoundTrip(t *testing.T) {
	msg := []byte("MSH|^~\\&|A\rPID|||1\r")
	b := AppendFrame(nil, msg)
	if b[0] != StartBlock || !bytes.HasSuffix(b, []byte{EndBlock, CarriageRet}) {
		t.Fatalf("frame = %q", b)
	}
	got, err := readAll(bytes.NewReader(b), 1<<10)
	if err != nil || len(got) != 1 || got[0] != string(msg) {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// FuzzReader: any byte stream is read without a panic, no frame is longer
// than the limit, and frames written with AppendFrame are read back as
// they were.
func FuzzReader(f *testing.F) {
	f.Add([]byte("\x0bMSH|^~\\&|A\r\x1c\r"), 64)
	f.Add([]byte("\x0bA\x1c\x0bB\x1c\r\n"), 4)
	f.Add([]byte("\x0b\x0b\x1c\x1c\r\r"), 1)
	f.Add([]byte("\r\n \t\x0bxyz"), 2)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			max = 64
		}
		r := NewReader(bytes.NewReader(in))
		for range 1000 {
			if r.WaitFrame() != nil {
				break
			}
			b, err := r.ReadBody(max)
			if len(b) > max {
				t.Fatalf("frame of %d bytes, limit %d", len(b), max)
			}
			if err != nil && !errors.Is(err, ErrTooLarge) {
				break
			}
		}
		// Round trip: a message without framing bytes comes back whole.
		msg := bytes.Map(func(r rune) rune {
			if r == StartBlock || r == EndBlock {
				return -1
			}
			return r
		}, in)
		got, err := readAll(bytes.NewReader(AppendFrame(nil, msg)), len(msg)+1)
		if err != nil || len(got) != 1 || got[0] != string(msg) {
			t.Fatalf("round trip of %q: %q, %v", msg, got, err)
		}
	})
}
