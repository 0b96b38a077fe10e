"""Compute functions, by family: arrays and options in, a `LossOutput` of torch tensors out."""
