"""edge_runtime: numpy-only speech-emotion inference (frontend, WAV, resampling, engines)."""
