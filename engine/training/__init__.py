"""DPA training: pseudo-labels, losses, FBP and user datasets, patch samplers, source training, adaptation.

Only ``dpa`` and ``losses`` are torch modules; importing this package imports nothing heavy.
"""
