#!/usr/bin/env python3
"""Write llm.c-format token shards (the format dsc reads, see docs/data.md).

A shard is a header of 256 little-endian int32 (magic 20240520, version 1, token count,
zeros) followed by the tokens as little-endian uint16. Pure Python, no dependencies.

Encodings (--encoding):
  bytes  (default) every UTF-8 byte of the input text is one token (ids 0..255)
  ids    the input is whitespace-separated integer token ids (0..65535), e.g. the output
         of any tokenizer
  gpt2   GPT-2 BPE through the optional `tiktoken` package (not needed otherwise)

Each input file is one document; --eot ID puts ID in front of every document, as llm.c
does with <|endoftext|> (50256) for GPT-2.

Examples:
  tools/make_shard.py corpus.txt -o data/tiny.bin
  tools/make_shard.py a.txt b.txt --eot 0 --shard-size 100000 --val-tokens 20000 -o data/tiny
      -> data/tiny_val_000000.bin, data/tiny_train_000000.bin, data/tiny_train_000001.bin, ...
  tools/make_shard.py --check data/tiny_train_*.bin
"""
import argparse
import struct
import sys

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256


def write_shard(path, tokens):
    """Writes one shard: the 1024-byte header, then the tokens as uint16 little-endian."""
    if not tokens:
        raise ValueError(f"{path}: a shard needs at least one token")
    if len(tokens) > 2**31 - 1:
        raise ValueError(f"{path}: {len(tokens)} tokens do not fit the int32 count")
    bad = next((t for t in tokens if not 0 <= t <= 65535), None)
    if bad is not None:
        raise ValueError(f"{path}: token {bad} does not fit uint16")
    header = [0] * HEADER_INTS
    header[0], header[1], header[2] = MAGIC, VERSION, len(tokens)
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{HEADER_INTS}i", *header))
        f.write(struct.pack(f"<{len(tokens)}H", *tokens))


def read_shard(path):
    """Reads and checks one shard; returns its tokens (a list of ints)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 * HEADER_INTS:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than the 1024-byte header")
    magic, version, count = struct.unpack_from("<3i", data)
    if magic != MAGIC:
        raise ValueError(f"{path}: bad magic {magic} (expected {MAGIC})")
    if version != VERSION:
        raise ValueError(f"{path}: version {version} (expected {VERSION})")
    if count <= 0 or len(data) != 4 * HEADER_INTS + 2 * count:
        raise ValueError(f"{path}: header says {count} tokens but the file has {len(data) - 1024} token bytes")
    return list(struct.unpack_from(f"<{count}H", data, 4 * HEADER_INTS))


def encode(text_bytes, encoding):
    if encoding == "bytes":
        return list(text_bytes)
    if encoding == "ids":
        return [int(w) for w in text_bytes.split()]
    try:
        import tiktoken  # optional
    except ImportError:
        sys.exit("make_shard: --encoding gpt2 needs the tiktoken package (pip install tiktoken)")
    enc = tiktoken.get_encoding("gpt2")
    return enc.encode_ordinary(text_bytes.decode("utf-8"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="input files (one document each), or shards with --check")
    ap.add_argument("-o", "--output", help="output file (one shard) or prefix (with --shard-size / --val-tokens)")
    ap.add_argument("--encoding", choices=["bytes", "ids", "gpt2"], default="bytes")
    ap.add_argument("--eot", type=int, default=None, help="token id put before every document")
    ap.add_argument("--shard-size", type=int, default=0, help="tokens per shard (0: one shard)")
    ap.add_argument("--val-tokens", type=int, default=0, help="the first N tokens go to PREFIX_val_000000.bin")
    ap.add_argument("--check", action="store_true", help="read the given shards back and print their sizes")
    args = ap.parse_args()

    if args.check:
        total = 0
        for path in args.inputs:
            toks = read_shard(path)
            total += len(toks)
            print(f"{path}: {len(toks)} tokens, max id {max(toks)}")
        print(f"total: {total} tokens in {len(args.inputs)} shard(s)")
        return
    if not args.output:
        ap.error("-o/--output is required")

    tokens = []
    for path in args.inputs:
        with open(path, "rb") as f:
            doc = encode(f.read(), args.encoding)
        if args.eot is not None:
            tokens.append(args.eot)
        tokens.extend(doc)

    if args.shard_size <= 0 and args.val_tokens <= 0:
        write_shard(args.output, tokens)
        print(f"{args.output}: {len(tokens)} tokens")
        return
    val, train = tokens[: args.val_tokens], tokens[args.val_tokens :]
    if args.val_tokens > 0:
        write_shard(f"{args.output}_val_000000.bin", val)
        print(f"{args.output}_val_000000.bin: {len(val)} tokens")
    size = args.shard_size if args.shard_size > 0 else max(len(train), 1)
    for k, start in enumerate(range(0, len(train), size)):
        path = f"{args.output}_train_{k:06d}.bin"
        write_shard(path, train[start : start + size])
        print(f"{path}: {len(train[start:start + size])} tokens")


if __name__ == "__main__":
    main()
