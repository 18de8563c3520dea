"""Mamba-MIS, the project's second model: supervised lesion segmentation (see docs/mamba_mis.md)."""
