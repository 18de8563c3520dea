"""The SP-Mamba model, one component per file."""

from .encoders import ENCODERS, Encoder, WeightsUnavailable
from .spmamba import PRESETS, SPMamba, SPMambaConfig, SPMambaOutput

__all__ = ["ENCODERS", "Encoder", "PRESETS", "SPMamba", "SPMambaConfig", "SPMambaOutput", "WeightsUnavailable"]
