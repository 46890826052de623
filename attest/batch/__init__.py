"""Merkle batches: many signed records under one assertion (the tree, the manifest voters read)."""
