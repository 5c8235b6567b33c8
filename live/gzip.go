package live

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/klauspost/compress/flate"
)

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

// gzipDict is the longest dictionary a frame is compressed against: the most
// flate.StatelessDeflate uses.
const gzipDict = 8 << 10

// substantialFrame is the size from which a frame is taken to carry blocks:
// the dictionary of the next frame reaches back to it (see history.stamp).
const substantialFrame = 256

// gzipHeader starts every gzip stream: magic, deflate, no flags, no mtime,
// unknown OS (RFC 1952).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// zdata is a frame's compressed forms, each made at most once, by the first
// viewer that needs it.
type zdata struct {
	// Set by Room.broadcast; zero for a frame written to one viewer only.
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
	dictLen = min(dictLen, f.z.dictLen) // never more than the room had
	if f.z.dictLen > 0 && dictLen == f.z.dictLen {
		return f.z.withDict.get(func() []byte { return deflate(f.Data, f.dictTail(f.z.dictLen)) })
	}
	for i := len(dictTiers) - 1; i >= 0; i-- {
		if n := dictTiers[i]; n <= dictLen {
			return f.z.tiers[i].get(func() []byte { return deflate(f.Data, f.dictTail(n)) })
		}
	}
	return f.z.bare.get(func() []byte { return deflate(f.Data, nil) })
}

// dictTiers are the shorter dictionaries a frame may be compressed against.
var dictTiers = [...]int{256, 512, 1 << 10, 2 << 10, 4 << 10}

// dictTail returns the last n bytes of the frames before f, contiguous.
func (f *Frame) dictTail(n int) []byte {
	dict := make([]byte, 0, n)
	skip := -n
	for _, d := range f.z.dict {
		skip += len(d)
	}
	for _, d := range f.z.dict {
		if skip >= len(d) {
			skip -= len(d)
			continue
		}
		dict = append(dict, d[skip:]...)
		skip = 0
	}
	return dict
}

// history is the tail of a room's stream of frames: what the next frame is
// compressed against. Guarded by Room.mu.
type history struct {
	seq   uint64
	parts [][]byte // frames' data, oldest first; only ever appended and cut from the front
	n     int
}

// stamp gives f its place in the stream and its dictionary, then adds it.
// f.z.dict shares parts' backing array: entries below its length are never
// written again (append writes past the end), so no copy is needed.
//
// The dictionary reaches back to the last frame of some size (a frame of
// blocks; small ones are signals and presence), not always 8 KiB: what a
// frame repeats is the growing block of the frame before, and compressing
// against a dictionary costs time in its length (4 µs per frame with 1 KiB,
// 18 µs with 8 KiB, BenchmarkCompressFrame), for each of thousands of frames
// a second when many answers stream at once.
func (h *history) stamp(f *Frame) {
	h.seq++
	f.z.seq = h.seq
	f.z.dict = h.parts
	n := 0
	for i := len(h.parts) - 1; i >= 0 && n < gzipDict; i-- {
		n += len(h.parts[i])
		if len(h.parts[i]) >= substantialFrame {
			break
		}
	}
	f.z.dictLen = min(n, gzipDict)
	part := f.Data
	if len(part) > gzipDict {
		// Only its tail can be a dictionary. Kept whole, a big frame (a
		// room's catch-up of a long conversation) stayed in memory for as
		// long as the room was quiet.
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
}

// wire writes one viewer's stream, gzip-encoded or not, and knows how much of
// its room's stream the viewer has had in a row.
type wire struct {
	out  *meteredStream
	gzip bool

	started bool   // the gzip header is written
	crc     uint32 // of everything written, uncompressed
	size    uint32 // uncompressed length, mod 2^32 as gzip wants
	next    uint64 // the room frame that continues this viewer's run (0: none)
	run     int    // bytes of room frames written in a row, ending before next
}

// frame writes a frame: one of the room's, or one made for this viewer only.
func (w *wire) frame(f *Frame) error {
	if !w.gzip {
		return w.out.write(f.Data, true)
	}
	if f.z.seq == 0 {
		return w.raw(f.Data, true)
	}
	dictLen := 0
	if f.z.seq == w.next {
		dictLen = w.run
	}
	z := f.compressed(dictLen)
	if err := w.encoded(f.Data, z, true); err != nil {
		return err
	}
	if f.z.seq == w.next {
		w.run += len(f.Data)
	} else {
		w.run = len(f.Data)
	}
	w.next = f.z.seq + 1
	return nil
}

// skip notes a room frame the viewer was not written (it already had it):
// its stream no longer ends like the room's.
func (w *wire) skip() { w.next, w.run = 0, 0 }

// raw writes bytes made for this viewer only (a catch-up, a heartbeat).
func (w *wire) raw(p []byte, isFrame bool) error {
	if !w.gzip {
		return w.out.write(p, isFrame)
	}
	w.skip()
	return w.encoded(p, deflate(p, nil), isFrame)
}

// header writes the gzip header before the stream's first bytes.
func (w *wire) header() error {
	if w.started {
		return nil
	}
	w.started = true
	return w.out.write(gzipHeader, false)
}

func (w *wire) encoded(p, z []byte, isFrame bool) error {
	if err := w.header(); err != nil {
		return err
	}
	w.crc = crc32.Update(w.crc, crc32.IEEETable, p)
	w.size += uint32(len(p))
	return w.out.write(z, isFrame)
}

// end finishes the stream before a clean end of the response: with gzip, the
// final block and the trailer, without which a client may report the body as
// truncated. A stream cut short (shutdown, a lost subscription) gets none: it
// is aborted, and the client reconnects.
func (w *wire) end() error {
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
	if err := w.out.write(buf.Bytes(), false); err != nil {
		return err
	}
	return w.out.Flush()
}
