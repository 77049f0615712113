// Package mllp reads and writes the Minimal Lower Layer Protocol framing
// that HL7 v2 messages travel in over TCP: a start byte 0x0B, the message,
// and the end bytes 0x1C 0x0D. The frame carries no length and no checksum,
// so a Reader bounds what it buffers itself. It knows nothing of HL7.
package mllp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Framing bytes.
const (
	StartBlock   = 0x0B // VT: a frame begins
	EndBlock     = 0x1C // FS: a frame ends
	CarriageRet  = 0x0D // CR: follows EndBlock
	maxJunkBytes = 4096 // most bytes tolerated between frames
)

// ErrTooLarge is returned (wrapped) by ReadBody when a frame is longer than
// the limit. The frame has then been read to its end and discarded past
// the limit, so the Reader is ready for the next frame, and ReadBody
// returns the frame's first bytes (up to the limit) with the error.
var ErrTooLarge = errors.New("mllp: frame too large")

// ErrFraming is returned (wrapped) when the bytes on the connection are not
// MLLP frames: something other than whitespace between frames, or a
// frame that never ends within the discard bound. The connection cannot
// be resynchronised and should be closed.
var ErrFraming = errors.New("mllp: framing error")

// Reader reads MLLP frames from a byte stream. A frame may arrive split
// across reads, and several frames in one read. It is not safe for
// concurrent use.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 16<<10)}
}

// WaitFrame reads up to and including the start byte of the next frame.
// Whitespace (CR, LF, space, tab) between frames is skipped, as some
// senders put a line break after each frame; anything else is
// ErrFraming. io.EOF means the stream ended cleanly between frames.
func (r *Reader) WaitFrame() error {
	for n := 0; ; n++ {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		switch b {
		case StartBlock:
			return nil
		case '\r', '\n', ' ', '\t':
			if n < maxJunkBytes {
				continue
			}
		}
		return fmt.Errorf("%w: byte 0x%02X outside a frame", ErrFraming, b)
	}
}

// ReadBody reads the rest of a frame whose start byte WaitFrame read, and
// returns its message bytes without the framing. max bounds the message:
// beyond it, ReadBody keeps the first max bytes, reads on to the end of
// the frame (at most 64 × max bytes more, else ErrFraming) and returns
// those bytes with ErrTooLarge. An end byte not followed by CR still ends
// the frame (the byte after it is left for WaitFrame). A start byte inside
// a frame is ErrFraming. io.ErrUnexpectedEOF means the stream ended inside
// a frame.
func (r *Reader) ReadBody(max int) ([]byte, error) {
	var msg []byte
	discarded := 0
	for {
		chunk, err := r.br.ReadSlice(EndBlock)
		body := chunk
		if err == nil {
			body = chunk[:len(chunk)-1]
		}
		if bytes.IndexByte(body, StartBlock) >= 0 {
			return nil, fmt.Errorf("%w: start byte inside a frame", ErrFraming)
		}
		if room := max - len(msg); room > 0 {
			take := min(room, len(body))
			msg = append(msg, body[:take]...)
			discarded += len(body) - take
		} else {
			discarded += len(body)
		}
		if discarded > 64*max {
			return nil, fmt.Errorf("%w: frame longer than %d bytes without an end", ErrFraming, 65*max)
		}
		switch {
		case err == nil:
			// The CR after the end byte is taken if it is here already;
			// one still on its way is skipped by WaitFrame, so that a
			// sender waiting for its acknowledgement is not waited for.
			if r.br.Buffered() > 0 {
				if b, _ := r.br.Peek(1); b[0] == CarriageRet {
					r.br.Discard(1)
				}
			}
			if discarded > 0 {
				return msg, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(msg)+discarded, max)
			}
			if msg == nil {
				msg = []byte{}
			}
			return msg, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// AppendFrame appends msg framed to dst and returns the extended slice.
func AppendFrame(dst, msg []byte) []byte {
	dst = append(dst, StartBlock)
	dst = append(dst, msg...)
	return append(dst, EndBlock, CarriageRet)
}
