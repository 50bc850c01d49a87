"""cyan_rcbm: CYAN-RNN and RCBM for information cascades and social dynamics."""

__version__ = '0.1.0'
