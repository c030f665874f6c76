"""Deterministic synthetic image generators (pure numpy + Pillow, no TensorFlow).

`core.synth.shapes` draws hand-drawn circles, squares and triangles on paper; `core.synth.vehicles`
draws rear views and close, elevated fronts of cars in eight body colours. Both expose `CLASS_NAMES` and
`generate(n_per_class, size=128, seed=0) -> (images uint8 (N, size, size, 3), labels int64 (N,))`.
"""
