"""Read a TensorFlow checkpoint (a tensor bundle: PREFIX.index + PREFIX.data-00000-of-00001) without
TensorFlow, which is a 500 MB dependency for reading a table of names and offsets.

PREFIX.index is an SSTable (LevelDB's table format): data blocks of prefix-compressed entries (varint shared
key length, varint unshared length, varint value length, key suffix, value; restart offsets as uint32 and
their count at the end), each followed by a 5-byte trailer (compression byte, masked CRC32C); an index
block maps each data block's last key to its handle (varint offset, varint size); a 48-byte footer holds the
metaindex and index handles and the magic 0xdb4775248b80fb57. The entry under the empty key is a
BundleHeaderProto (num_shards, endianness); every other value is a BundleEntryProto (dtype, shape,
shard_id, offset, size) locating the tensor's raw little-endian bytes in the data file of its shard.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pluralfill.errors import PluralfillError

MAGIC = 0xDB4775248B80FB57
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 19: np.float16, 10: np.bool_}  # TF DataType enum


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message: ints for varint / fixed fields, bytes for
    length-delimited ones."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _entry(value: bytes) -> TensorEntry:
    dtype, shape, shard, offset, size = 0, [], 0, 0, 0
    for number, v in _proto_fields(value):
        if number == 1:
            dtype = v
        elif number == 2:  # TensorShapeProto: repeated Dim {size = 1}
            shape = [dict(_proto_fields(dim)).get(1, 0) for n, dim in _proto_fields(v) if n == 2]
        elif number == 3:
            shard = v
        elif number == 4:
            offset = v
        elif number == 5:
            size = v
    return TensorEntry(dtype, tuple(shape), shard, offset, size)


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    if offset + size + 5 > len(data):
        raise ValueError("a block runs past the end of the file")
    if data[offset + size] != 0:
        raise ValueError(f"compressed blocks (type {data[offset + size]}) are not supported")
    block = data[offset : offset + size]
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end, pos, key, entries = len(block) - 4 - 4 * restarts, 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def resolve_prefix(path: str | os.PathLike) -> Path:
    """The checkpoint prefix from a folder (its `checkpoint` file names the prefix), a prefix, or any of its
    files (.index, .meta, .data-*)."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        if state.is_file():
            for line in state.read_text(errors="replace").splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    return p / Path(name).name
        found = sorted(p.glob("*.index"))
        if len(found) == 1:
            return found[0].with_suffix("")
        raise PluralfillError(
            f"{p} holds no TensorFlow checkpoint (no `checkpoint` file and {len(found)} .index files)"
        )
    name = p.name
    for suffix in (".index", ".meta"):
        if name.endswith(suffix):
            return p.with_name(name[: -len(suffix)])
    if ".data-" in name:
        return p.with_name(name[: name.index(".data-")])
    return p


class TFCheckpoint:
    """names, shape(name), read(name) -> numpy array."""

    def __init__(self, path: str | os.PathLike):
        self.prefix = resolve_prefix(path)
        index = self.prefix.with_name(self.prefix.name + ".index")
        if not index.is_file():
            raise PluralfillError(f"no TensorFlow checkpoint at {path} (expected {index.name} beside the .data file)")
        data = index.read_bytes()
        try:
            if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != MAGIC:
                raise ValueError("no SSTable footer (a TensorFlow .index file ends with magic 0xdb4775248b80fb57)")
            _, pos = _varint(data, len(data) - 48)  # metaindex handle
            _, pos = _varint(data, pos)
            index_offset, pos = _varint(data, pos)
            index_size, _ = _varint(data, pos)
            self.entries: dict[str, TensorEntry] = {}
            shards = 1
            for _, handle in _block(data, index_offset, index_size):
                offset, p = _varint(handle, 0)
                size, _ = _varint(handle, p)
                for key, value in _block(data, offset, size):
                    if key == b"":
                        shards = dict(_proto_fields(value)).get(1, 1)
                    else:
                        self.entries[key.decode()] = _entry(value)
        except (ValueError, TypeError, KeyError, OverflowError, struct.error, IndexError, UnicodeDecodeError) as e:
            raise PluralfillError(f"{index} is not a TensorFlow checkpoint index ({e})") from None
        self.shards = [self.prefix.with_name(f"{self.prefix.name}.data-{i:05d}-of-{shards:05d}") for i in range(shards)]
        for shard in {e.shard for e in self.entries.values()}:
            if not 0 <= shard < len(self.shards):
                raise PluralfillError(f"{index} names data shard {shard} of {len(self.shards)}: a damaged index")
            if not self.shards[shard].is_file():
                raise PluralfillError(
                    f"{self.shards[shard]} is missing: a TensorFlow checkpoint is the .index and its .data files"
                )
        self._sizes = [f.stat().st_size if f.is_file() else 0 for f in self.shards]

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name].shape

    def read(self, name: str) -> np.ndarray:
        e = self.entries[name]
        if e.dtype not in DTYPES:
            raise PluralfillError(
                f"{name} in {self.prefix}: TensorFlow dtype {e.dtype} is not a numeric type this reader knows"
            )
        dtype = np.dtype(DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape)) if e.shape else 1
        if e.size != count * dtype.itemsize or e.offset + e.size > self._sizes[e.shard]:
            raise PluralfillError(
                f"{self.shards[e.shard]} is truncated or does not belong to {self.prefix.name}.index "
                f"({name}: {e.size} bytes at {e.offset}, file {self._sizes[e.shard]} bytes)"
            )
        with open(self.shards[e.shard], "rb") as f:
            f.seek(e.offset)
            return np.frombuffer(f.read(e.size), dtype).reshape(e.shape).astype(dtype.newbyteorder("="))
