"""A TensorFlow checkpoint writer for tests (the tensor bundle format: an SSTable index + a data file), so
tests can make official-layout checkpoints without TensorFlow: full-size ones from a manifest, foreign ones,
broken ones. Keys are sorted, one data block without prefix compression, CRCs of entries left 0."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

DTYPE = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3, np.dtype(np.int64): 9}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    return _varint(number << 3) + _varint(value)


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in entries)
    return body + struct.pack("<II", 0, 1) + b"\x00\x00\x00\x00\x00"  # one restart at 0; trailer: no compression, CRC 0


def write_checkpoint(prefix: str | Path, tensors: dict[str, np.ndarray]) -> Path:
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    entries, offset = [(b"", _field(1, 1) + _field(3, _field(1, 1)))], 0
    with open(prefix.with_name(prefix.name + ".data-00000-of-00001"), "wb") as data:
        for name in sorted(tensors):
            a = np.ascontiguousarray(tensors[name])
            raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
            data.write(raw)
            shape = b"".join(_field(2, _field(1, d)) for d in a.shape)
            entry = _field(1, DTYPE[a.dtype]) + _field(2, shape) + _field(4, offset) + _field(5, len(raw))
            entries.append((name.encode(), entry))
            offset += len(raw)
    data_block = _block(entries)
    meta_block = _block([])
    index_block = _block([(entries[-1][0], _varint(0) + _varint(len(data_block) - 5))])
    meta_at, index_at = len(data_block), len(data_block) + len(meta_block)
    handles = _varint(meta_at) + _varint(len(meta_block) - 5) + _varint(index_at) + _varint(len(index_block) - 5)
    footer = handles.ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    prefix.with_name(prefix.name + ".index").write_bytes(data_block + meta_block + index_block + footer)
    (prefix.parent / "checkpoint").write_text(
        f'model_checkpoint_path: "{prefix.name}"\nall_model_checkpoint_paths: "{prefix.name}"\n'
    )
    return prefix
