"""Shared network blocks and the pretrained backbones used by metrics and losses."""
