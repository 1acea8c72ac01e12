import Foundation

/// The eStargz writer and checker the builder runs (with the machine's python3) for
/// `--output type=image,compression=estargz`: buildah 1.28 and containers/image cannot write
/// eStargz, so each layer is converted after the image is written, following the format the
/// stargz-snapshotter project documents (per-entry gzip members, the TOC as `stargz.index.json`,
/// the 51-byte footer), and read back to check the TOC against the layer before it is pushed.
public enum EStargz {
    public static let tocAnnotation = "containerd.io/snapshot/stargz/toc.digest"
    public static let sizeAnnotation = "io.containers.estargz.uncompressed-size"

    /// `python3 SCRIPT convert IN.tar OUT` / `python3 SCRIPT verify LAYER`.
    public static let script = #"""
#!/usr/bin/env python3
"""eStargz: a tar layer rewritten as a seekable gzip stream (stargz-snapshotter's format).

    estargz.py convert IN.tar OUT.tar.gz     prints JSON: tocDigest, diffID, uncompressedSize
    estargz.py verify LAYER.tar.gz           checks the footer, the TOC, every entry's offset and digest

Every regular file's contents start a gzip member of their own (split into chunks of at most
CHUNK bytes, each its own member), after a member holding the entry's tar header; then a member
with the TOC as the tar entry `stargz.index.json`, then the 51-byte footer: an empty gzip member
whose extra field says where the TOC starts. Concatenated gzip members are one valid gzip stream,
so a client that knows nothing of the format reads an ordinary tar.gz.
"""
import hashlib
import io
import json
import struct
import sys
import tarfile
import zlib

CHUNK = 4 << 20
TOC_NAME = "stargz.index.json"


def member(data: bytes, level: int = 6) -> bytes:
    """One gzip member (RFC 1952) holding `data`."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + body + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


def footer(toc_offset: int) -> bytes:
    """The eStargz footer: 51 bytes, an empty member with the TOC offset in its extra field."""
    payload = b"%016xSTARGZ" % toc_offset
    extra = b"SG" + struct.pack("<H", len(payload)) + payload
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra)) + extra
    stored_empty = b"\x01\x00\x00\xff\xff"
    return header + stored_empty + struct.pack("<II", 0, 0)


def tar_header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(format=tarfile.PAX_FORMAT)


def padding(size: int) -> bytes:
    return b"\0" * ((512 - size % 512) % 512)


TYPES = {tarfile.REGTYPE: "reg", tarfile.AREGTYPE: "reg", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


def convert(source: str, destination: str) -> dict:
    entries = []
    uncompressed = hashlib.sha256()
    size = 0
    with tarfile.open(source, "r:") as tar, open(destination, "wb") as out:
        offset = 0

        def emit(raw: bytes, compressed: bytes):
            nonlocal offset, size
            out.write(compressed)
            offset += len(compressed)
            uncompressed.update(raw)
            size += len(raw)

        for info in tar:
            if info.name in (TOC_NAME,):
                continue
            kind = TYPES.get(info.type)
            if kind is None:
                continue
            head = tar_header(info)
            entry = {"name": info.name, "type": kind, "mode": info.mode, "uid": info.uid, "gid": info.gid,
                     "uname": info.uname, "gname": info.gname, "modtime": "%sZ" % __import__("datetime").datetime.utcfromtimestamp(info.mtime).isoformat()}
            if kind in ("symlink", "hardlink"):
                entry["linkName"] = info.linkname
            if kind in ("char", "block"):
                entry["devMajor"], entry["devMinor"] = info.devmajor, info.devminor
            if kind != "reg":
                emit(head, member(head))
                entries.append(entry)
                continue
            data = tar.extractfile(info).read()
            entry["size"] = len(data)
            entry["digest"] = "sha256:" + hashlib.sha256(data).hexdigest()
            emit(head, member(head))
            if not data:
                entries.append(entry)
                continue
            first = True
            for start in range(0, len(data), CHUNK):
                chunk = data[start:start + CHUNK]
                chunk_entry = entry if first else {"name": info.name, "type": "chunk"}
                chunk_entry["offset"] = offset
                chunk_entry["chunkOffset"] = start
                chunk_entry["chunkSize"] = len(chunk)
                chunk_entry["chunkDigest"] = "sha256:" + hashlib.sha256(chunk).hexdigest()
                raw = chunk + (padding(len(data)) if start + CHUNK >= len(data) else b"")
                emit(raw, member(raw))
                if not first:
                    entries.append(chunk_entry)
                else:
                    entries.append(entry)
                first = False
        toc = json.dumps({"version": 1, "entries": entries}, sort_keys=True, separators=(",", ":")).encode()
        toc_info = tarfile.TarInfo(TOC_NAME)
        toc_info.size = len(toc)
        toc_info.mode = 0o644
        toc_raw = tar_header(toc_info) + toc + padding(len(toc)) + b"\0" * 1024
        toc_offset = offset
        emit(toc_raw, member(toc_raw))
        out.write(footer(toc_offset))
    return {"tocDigest": "sha256:" + hashlib.sha256(toc).hexdigest(), "diffID": "sha256:" + uncompressed.hexdigest(),
            "uncompressedSize": size}


def verify(path: str) -> dict:
    data = open(path, "rb").read()
    tail = data[-51:]
    assert tail[:4] == b"\x1f\x8b\x08\x04", "no eStargz footer"
    payload = tail[16:16 + 22]
    assert payload.endswith(b"STARGZ"), "footer extra field is not STARGZ"
    toc_offset = int(payload[:16], 16)
    toc_tar = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[toc_offset:-51])
    with tarfile.open(fileobj=io.BytesIO(toc_tar), mode="r:") as tar:
        info = tar.next()
        assert info.name == TOC_NAME, "the TOC entry is %s" % info.name
        toc = tar.extractfile(info).read()
    parsed = json.loads(toc)
    checked = 0
    for entry in parsed["entries"]:
        if "chunkDigest" not in entry:
            continue
        raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[entry["offset"]:])
        chunk = raw[:entry["chunkSize"]]
        assert "sha256:" + hashlib.sha256(chunk).hexdigest() == entry["chunkDigest"], "chunk of %s does not match" % entry["name"]
        checked += 1
    # The whole stream is still an ordinary tar.gz.
    names = [m.name for m in tarfile.open(path, "r:gz")]
    return {"tocDigest": "sha256:" + hashlib.sha256(toc).hexdigest(), "entries": len(parsed["entries"]), "chunksChecked": checked, "files": len(names)}


if __name__ == "__main__":
    if sys.argv[1] == "convert":
        print(json.dumps(convert(sys.argv[2], sys.argv[3])))
    elif sys.argv[1] == "verify":
        print(json.dumps(verify(sys.argv[2])))
    else:
        sys.exit("usage: estargz.py convert IN.tar OUT.tar.gz | verify LAYER.tar.gz")
"""#
}
