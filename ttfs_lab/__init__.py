"""ttfs-lab: train time-to-first-spike spiking neural networks from scratch (Che, Fang et al., arXiv 2410.23619)."""

__version__ = "0.1.0"
