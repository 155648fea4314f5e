#!/usr/bin/env python3
"""Checks a PNG with Python's zlib: signature, IHDR first (size, 8-bit RGB), every chunk's
CRC, IEND last, and the inflated image data (filter bytes 0..4, the right length).

usage: check_png.py FILE WIDTH HEIGHT
Prints "PNG OK <width>x<height>" or "FAIL: ..." (exit status 1)."""
import struct
import sys
import zlib


def main():
    path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        print("FAIL: %s: not a PNG signature" % path)
        return 1
    off, chunks, idat = 8, [], b""
    while off < len(data):
        n, = struct.unpack(">I", data[off:off + 4])
        ctype, body = data[off + 4:off + 8], data[off + 8:off + 8 + n]
        crc, = struct.unpack(">I", data[off + 8 + n:off + 12 + n])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            print("FAIL: %s: bad CRC in chunk %r" % (path, ctype))
            return 1
        chunks.append(ctype)
        if ctype == b"IHDR":
            w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            if (w, h, depth, color, comp, filt, interlace) != (width, height, 8, 2, 0, 0, 0):
                print("FAIL: %s: IHDR %r" % (path, (w, h, depth, color, comp, filt, interlace)))
                return 1
        if ctype == b"IDAT":
            idat += body
        off += 12 + n
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND" or off != len(data):
        print("FAIL: %s: chunk order %r" % (path, chunks))
        return 1
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    if len(raw) != stride * height or any(raw[y * stride] > 4 for y in range(height)):
        print("FAIL: %s: image data of %d bytes, expected %d" % (path, len(raw), stride * height))
        return 1
    print("PNG OK %dx%d" % (width, height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
