"""Chunk-level dedup: content-defined chunks (FastCDC, BLAKE3 ids) in packs, blob recipes."""
