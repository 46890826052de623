"""Content addressing (CIDs identical to `ipfs add`, CAR files) and the stores records are pinned to.

Public modules in `__all__` (`_http`, the bounded HTTP reads the remote stores share, is private). A store is
anything that satisfies `attest.ipfs.store.ContentStore`.
"""

__all__ = ["car", "cid", "dagpb", "gateway", "kubo", "local", "pinning", "remotes", "store", "unixfs"]
