"""Data: decoding pairs, label maps, transforms, batching, and the File-mode source (no MXNet)."""
