"""Pipe mode: RecordIO framing, augmented manifests, FIFOs, the Pipe source, the local feeder and the
pre-upload check (no MXNet)."""
