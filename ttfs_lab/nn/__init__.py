"""Thin modules over ``ttfs_lab.functional``: neuron, normalized layers (+ fold), pools, decoders."""

from ttfs_lab.nn.decoders import DECODERS, build_decoder
from ttfs_lab.nn.neuron import TTFSNeuron
from ttfs_lab.nn.pooling import POOLS
from ttfs_lab.nn.synapse import NormConv2d, NormLinear

__all__ = ["DECODERS", "POOLS", "NormConv2d", "NormLinear", "TTFSNeuron", "build_decoder"]
