"""nmrnn: neuromodulated low-rank RNNs (NM-RNN), their baselines, tasks, training and analyses.

Reproduction package for Costacurta, Bhandarkar, Zoltowski & Linderman, NeurIPS 2024.
"""

__version__ = "0.1.0"
