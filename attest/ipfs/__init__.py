"""Content addressing (CIDs identical to `ipfs add`, CAR files) and the stores records are pinned to."""
