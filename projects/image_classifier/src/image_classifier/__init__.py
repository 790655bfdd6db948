"""Image classification on mlstack: prepare -> train -> evaluate -> export -> quantize -> serve."""
