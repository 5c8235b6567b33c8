// Package gzipwire writes a room's frames gzip-encoded to many viewers,
// compressing each frame once for all of them.
//
//	var room gzipwire.History           // one per room, guarded by the room
//	f := room.Add(data)                 // as the room broadcasts a frame
//	w := gzipwire.NewWire(out, gzip)    // one per viewer
//	w.Frame(f)                          // a room frame
//	w.Raw(heartbeat, false)             // bytes for this viewer only
//	w.End()                             // before a clean end of the response
//
// Streams are gzip-encoded for clients that accept it, and the compression is
// shared like the frames themselves.
//
// Why: a growing Markdown block is re-sent whole in every frame (frames must
// be idempotent, so they carry state, not appends). Uncompressed, a viewer
// receives 8-11x the answer's HTML at one frame per 25 ms; the repeats are
// exactly what LZ77 removes when the previous frames are in its window. But a
// stateful compressor per connection (compress/flate keeps about 1.1 MiB) does
// not fit thousands of viewers, and compressing per viewer would undo "render
// once". So each frame is deflated a few times at most, whoever watches:
//
//   - with a dictionary: the room's last gzipDict bytes of frames before it.
//     A viewer whose stream ends with exactly those bytes (it was written the
//     room's frames one after another, nothing in between) gets this form;
//     that is every viewer keeping up with an answer.
//   - without: for a viewer that just joined, skipped a frame or was written
//     something of its own (a catch-up, a heartbeat). Its next frames use as
//     much of the dictionary as it has had room frames in a row, and the
//     whole once that is gzipDict bytes.
//
// Each piece is a complete deflate block ending on a byte boundary
// (flate.StatelessDeflate), so pieces concatenate into one valid stream and
// the client can decode every frame as soon as it arrives. A viewer keeps only
// a CRC and a length for the gzip trailer: no buffers.
package gzipwire

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/flate"
)

// gzipDict is the longest dictionary a frame is compressed against: the most
// flate.StatelessDeflate uses.
const gzipDict = 8 << 10

// substantialFrame is the size from which a frame is taken to carry blocks:
// the dictionary of the next frame reaches back to it (see History.Add).
const substantialFrame = 256

// gzipHeader starts every gzip stream: magic, deflate, no flags, no mtime,
// unknown OS (RFC 1952).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// Frame is one frame of a room's stream and its compressed forms, each made
// at most once, by the first viewer that needs it. History.Add makes it.
type Frame struct {
	data    []byte
	seq     uint64   // position of the frame in its room's stream, from 1
	dict    [][]byte // the frames before it, oldest first, covering dictLen
	dictLen int      // bytes of dictionary the frame was compressed against

	withDict, bare lazyBytes
	tiers          [len(dictTiers)]lazyBytes // for viewers building a run
}

type lazyBytes struct {
	once sync.Once
	b    []byte
}

func (l *lazyBytes) get(make func() []byte) []byte {
	l.once.Do(func() { l.b = make() })
	return l.b
}

// deflate compresses p into a standalone deflate block, byte-aligned, that
// may follow any stream whose last bytes are dict.
func deflate(p, dict []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(p)/3 + 64)
	// Writing into a bytes.Buffer cannot fail.
	_ = flate.StatelessDeflate(&buf, p, false, dict)
	return buf.Bytes()
}

// compressed returns f's data deflated for a viewer whose stream so far ends
// with the room's last dictLen bytes (0 for any viewer). The full dictionary
// and none are the common cases. A viewer still building up its run after a
// catch-up or a heartbeat uses the largest of a few fixed lengths that it
// has, so that however many viewers there are, a frame is compressed at
// most len(dictTiers)+2 times, and viewers in the same state share the bytes.
func (f *Frame) compressed(dictLen int) []byte {
	dictLen = min(dictLen, f.dictLen) // never more than the room had
	if f.dictLen > 0 && dictLen == f.dictLen {
		return f.withDict.get(func() []byte { return deflate(f.data, f.dictTail(f.dictLen)) })
	}
	for i := len(dictTiers) - 1; i >= 0; i-- {
		if n := dictTiers[i]; n <= dictLen {
			return f.tiers[i].get(func() []byte { return deflate(f.data, f.dictTail(n)) })
		}
	}
	return f.bare.get(func() []byte { return deflate(f.data, nil) })
}

// dictTiers are the shorter dictionaries a frame may be compressed against.
var dictTiers = [...]int{256, 512, 1 << 10, 2 << 10, 4 << 10}

// dictTail returns the last n bytes of the frames before f, contiguous.
func (f *Frame) dictTail(n int) []byte {
	dict := make([]byte, 0, n)
	skip := -n
	for _, d := range f.dict {
		skip += len(d)
	}
	for _, d := range f.dict {
		if skip >= len(d) {
			skip -= len(d)
			continue
		}
		dict = append(dict, d[skip:]...)
		skip = 0
	}
	return dict
}

// History is the tail of a room's stream of frames: what the next frame is
// compressed against. Its zero value is an empty stream; it is not safe for
// concurrent use.
type History struct {
	seq   uint64
	parts [][]byte // frames' data, oldest first; only ever appended and cut from the front
	n     int
}

// Add makes data the next frame of the stream, with its place and its
// dictionary. The frame's dict shares parts' backing array: entries below its length are never
// written again (append writes past the end), so no copy is needed.
//
// The dictionary reaches back to the last frame of some size (a frame of
// blocks; small ones are signals and presence), not always 8 KiB: what a
// frame repeats is the growing block of the frame before, and compressing
// against a dictionary costs time in its length (BenchmarkCompressFrame),
// for each of thousands of frames a second when many answers stream at once.
func (h *History) Add(data []byte) *Frame {
	f := &Frame{data: data}
	h.seq++
	f.seq = h.seq
	f.dict = h.parts
	n := 0
	for i := len(h.parts) - 1; i >= 0 && n < gzipDict; i-- {
		n += len(h.parts[i])
		if len(h.parts[i]) >= substantialFrame {
			break
		}
	}
	f.dictLen = min(n, gzipDict)
	part := data
	if len(part) > gzipDict {
		// Only its tail can be a dictionary: kept whole, a big frame (a
		// room's catch-up of a long conversation) would stay in memory for
		// as long as the room is quiet.
		part = bytes.Clone(part[len(part)-gzipDict:])
	}
	h.parts = append(h.parts, part)
	h.n += len(part)
	for len(h.parts) > 1 && h.n-len(h.parts[0]) >= gzipDict {
		h.n -= len(h.parts[0])
		h.parts = h.parts[1:]
	}
	// Cut from the front, the array still holds the dropped frames; after
	// many small frames that can keep megabytes of big ones reachable. Move
	// to a new array instead of clearing entries: older frames' dictionaries
	// still use the old one (and let it go with them).
	if cap(h.parts) > 2*len(h.parts)+16 {
		h.parts = append([][]byte(nil), h.parts...)
	}
	return f
}

// Writer is where a Wire's bytes go, as they go on the wire (encoded or
// not); isFrame says they carry an event, as opposed to a heartbeat or gzip
// framing.
type Writer interface {
	Send(p []byte, isFrame bool) error
	Flush() error
}

// Wire writes one viewer's stream, gzip-encoded or not, and knows how much of
// its room's stream the viewer has had in a row.
type Wire struct {
	out  Writer
	gzip bool

	started bool   // the gzip header is written
	crc     uint32 // of everything written, uncompressed
	size    uint32 // uncompressed length, mod 2^32 as gzip wants
	next    uint64 // the room frame that continues this viewer's run (0: none)
	run     int    // bytes of room frames written in a row, ending before next
}

// NewWire returns the wire of a viewer's stream to out, gzip-encoded when
// gzip is set (the response says Content-Encoding: gzip).
func NewWire(out Writer, gzip bool) *Wire { return &Wire{out: out, gzip: gzip} }

// Frame writes one of the room's frames.
func (w *Wire) Frame(f *Frame) error {
	if !w.gzip {
		return w.out.Send(f.data, true)
	}
	dictLen := 0
	if f.seq == w.next {
		dictLen = w.run
	}
	z := f.compressed(dictLen)
	if err := w.encoded(f.data, z, true); err != nil {
		return err
	}
	if f.seq == w.next {
		w.run += len(f.data)
	} else {
		w.run = len(f.data)
	}
	w.next = f.seq + 1
	return nil
}

// Skip notes a room frame the viewer was not written (it already had it):
// its stream no longer ends like the room's.
func (w *Wire) Skip() { w.next, w.run = 0, 0 }

// Raw writes bytes made for this viewer only (a catch-up, a heartbeat, a
// frame that is no room's).
func (w *Wire) Raw(p []byte, isFrame bool) error {
	if !w.gzip {
		return w.out.Send(p, isFrame)
	}
	w.Skip()
	return w.encoded(p, deflate(p, nil), isFrame)
}

// header writes the gzip header before the stream's first bytes.
func (w *Wire) header() error {
	if w.started {
		return nil
	}
	w.started = true
	return w.out.Send(gzipHeader, false)
}

func (w *Wire) encoded(p, z []byte, isFrame bool) error {
	if err := w.header(); err != nil {
		return err
	}
	w.crc = crc32.Update(w.crc, crc32.IEEETable, p)
	w.size += uint32(len(p))
	return w.out.Send(z, isFrame)
}

// End finishes the stream before a clean end of the response: with gzip, the
// final block and the trailer, without which a client may report the body as
// truncated. A stream cut short (shutdown, a lost subscription) gets none: it
// is aborted, and the client reconnects.
func (w *Wire) End() error {
	if !w.gzip {
		return nil
	}
	if err := w.header(); err != nil {
		return err
	}
	var buf bytes.Buffer
	_ = flate.StatelessDeflate(&buf, nil, true, nil)
	buf.Write(binary.LittleEndian.AppendUint32(nil, w.crc))
	buf.Write(binary.LittleEndian.AppendUint32(nil, w.size))
	if err := w.out.Send(buf.Bytes(), false); err != nil {
		return err
	}
	return w.out.Flush()
}
