"""edge_runtime: numpy-only speech-emotion inference (frontend, WAV, resampling, engines)."""

from edge_runtime.config import FrontendConfig
from edge_runtime.features import Frontend
from edge_runtime.normalization import with_dataset_stats
from edge_runtime.resample import resample
from edge_runtime.wav import WavError, read_wav

__all__ = ["Frontend", "FrontendConfig", "WavError", "read_wav", "resample", "with_dataset_stats"]
