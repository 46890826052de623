"""dag-pb nodes and the UnixFS `Data` message they carry, byte for byte as Kubo (go-merkledag) writes them.

Encoding order matters for CIDs: a PBNode is written Links (field 2) first, then Data (field 1); every link
carries Hash, Name (even when empty) and Tsize; UnixFS fields go in field-number order with `blocksizes`
unpacked (proto2). Decoding follows go-codec-dagpb's strictness for PBNode and reads any valid UnixFS message.
A block that hashes to its CID but does not decode raises `StoreError`: the CID names something that is not
a UnixFS file.
"""

from __future__ import annotations

from dataclasses import dataclass

from attest.errors import MalformedBlock
from attest.ipfs.cid import CID, DAG_PB, RAW, decode_cid_prefix, decode_varint, encode_varint

# UnixFS Data.Type
T_RAW, T_DIRECTORY, T_FILE, T_METADATA, T_SYMLINK, T_HAMT_SHARD = range(6)
_TYPE_NAMES = ("raw", "directory", "file", "metadata", "symlink", "HAMT shard")

_VARINT, _LEN = 0, 2


@dataclass(frozen=True)
class PBLink:
    cid: CID
    tsize: int
    name: str = ""


@dataclass(frozen=True)
class PBNode:
    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True)
class UnixFSData:
    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type] if 0 <= self.type < len(_TYPE_NAMES) else f"type {self.type}"


# -- encoding ----------------------------------------------------------------------------------------------
def _bytes_field(field: int, value: bytes | memoryview) -> bytes:
    return bytes((field << 3 | _LEN,)) + encode_varint(len(value)) + bytes(value)


def _varint_field(field: int, value: int) -> bytes:
    return bytes((field << 3 | _VARINT,)) + encode_varint(value)


def encode_link(link: PBLink) -> bytes:
    return (
        _bytes_field(1, link.cid.to_bytes()) + _bytes_field(2, link.name.encode("utf-8")) + _varint_field(3, link.tsize)
    )


def encode_node(links: list[PBLink] | tuple[PBLink, ...], data: bytes | None) -> bytes:
    parts = [_bytes_field(2, encode_link(link)) for link in links]
    if data is not None:
        parts.append(_bytes_field(1, data))
    return b"".join(parts)


def encode_unixfs(fs: UnixFSData) -> bytes:
    parts = [_varint_field(1, fs.type)]
    if fs.data is not None:
        parts.append(_bytes_field(2, fs.data))
    if fs.filesize is not None:
        parts.append(_varint_field(3, fs.filesize))
    parts += [_varint_field(4, size) for size in fs.blocksizes]
    return b"".join(parts)


def file_leaf_frame(size: int) -> tuple[bytes, bytes]:
    """(prefix, suffix) around `size` bytes of chunk data that make a v0 UnixFS file leaf block.

    Hashing prefix, chunk and suffix separately gives the leaf's CID without copying the chunk; the layout is
    PBNode{Data: UnixFS{Type: File, Data: chunk, filesize: size}}, exactly `encode_node([], encode_unixfs(…))`.
    """
    if size == 0:
        # Kubo leaves Data unset (not empty) for an empty file: 0a 04 08 02 18 00.
        return _bytes_field(1, encode_unixfs(UnixFSData(T_FILE, None, 0))), b""
    size_field = _varint_field(3, size)
    inner_len = 2 + 1 + len(encode_varint(size)) + size + len(size_field)
    prefix = b"\x0a" + encode_varint(inner_len) + b"\x08\x02\x12" + encode_varint(size)
    return prefix, size_field


# -- decoding ----------------------------------------------------------------------------------------------
def _fields(buf: bytes | memoryview, what: str) -> list[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) for every field; only varint and length-delimited wire types."""
    view = memoryview(buf)
    out: list[tuple[int, int, int | memoryview]] = []
    pos = 0
    try:
        while pos < len(view):
            key, pos = decode_varint(view, pos)
            field, wire = key >> 3, key & 7
            if field == 0:
                raise ValueError("field number 0")
            if wire == _VARINT:
                value, pos = decode_varint(view, pos)
                out.append((field, wire, value))
            elif wire == _LEN:
                length, pos = decode_varint(view, pos)
                if pos + length > len(view):
                    raise ValueError("length runs past the end")
                out.append((field, wire, view[pos : pos + length]))
                pos += length
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except ValueError as err:
        raise MalformedBlock(f"not a valid {what} protobuf: {err}") from None
    return out


def decode_link(buf: bytes | memoryview) -> PBLink:
    fields = _fields(buf, "dag-pb link")
    if [f for f, _, _ in fields] not in ([1], [1, 2], [1, 3], [1, 2, 3]):
        raise MalformedBlock("a dag-pb link must hold Hash, then optional Name and Tsize, each once")
    cid: CID | None = None
    name, tsize = "", 0
    for field, wire, value in fields:
        if field == 1 and isinstance(value, memoryview):
            try:
                parsed, end = decode_cid_prefix(value)
            except ValueError as err:
                raise MalformedBlock(f"a dag-pb link has a bad Hash: {err}") from None
            if end != len(value):
                raise MalformedBlock("a dag-pb link Hash has trailing bytes")
            cid = parsed
        elif field == 2 and isinstance(value, memoryview):
            try:
                name = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedBlock("a dag-pb link Name is not UTF-8") from None
        elif field == 3 and isinstance(value, int):
            tsize = value
        else:
            raise MalformedBlock(f"dag-pb link field {field} has wire type {wire}")
    assert cid is not None  # field 1 is always present (checked above)
    return PBLink(cid, tsize, name)


def decode_node(block: bytes | memoryview) -> PBNode:
    links: list[PBLink] = []
    data: bytes | None = None
    for field, _, value in _fields(block, "dag-pb"):
        if not isinstance(value, memoryview):
            raise MalformedBlock(f"dag-pb field {field} must be length-delimited")
        if field == 2 and data is None:
            links.append(decode_link(value))
        elif field == 1 and data is None:
            data = bytes(value)
        else:
            raise MalformedBlock("a dag-pb node holds Links, then at most one Data, and nothing else")
    return PBNode(tuple(links), data)


def decode_unixfs(buf: bytes | memoryview) -> UnixFSData:
    kind: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for field, wire, value in _fields(buf, "UnixFS Data"):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 2 and isinstance(value, memoryview):
            data = bytes(value)
        elif field == 3 and isinstance(value, int):
            filesize = value
        elif field == 4 and isinstance(value, int):
            blocksizes.append(value)
        elif field == 4 and isinstance(value, memoryview):  # packed, as some writers emit
            pos = 0
            try:
                while pos < len(value):
                    size, pos = decode_varint(value, pos)
                    blocksizes.append(size)
            except ValueError as err:
                raise MalformedBlock(f"bad packed UnixFS blocksizes: {err}") from None
        elif (field in (5, 6) and wire == _VARINT) or (field in (7, 8) and wire in (_VARINT, _LEN)):
            continue  # hashType, fanout (directories), mode, mtime: metadata a file's bytes do not depend on
        else:
            raise MalformedBlock(f"UnixFS field {field} has an unexpected wire type {wire}")
    if kind is None:
        raise MalformedBlock("a UnixFS Data message without a Type")
    return UnixFSData(kind, data, filesize, tuple(blocksizes))


def links(block: bytes | memoryview, codec: int = DAG_PB) -> list[CID]:
    """The CIDs a block links to, in order: a raw block has none."""
    if codec == RAW:
        return []
    if codec != DAG_PB:
        raise MalformedBlock(f"codec 0x{codec:x} is not dag-pb or raw; only UnixFS content is supported")
    return [link.cid for link in decode_node(block).links]
