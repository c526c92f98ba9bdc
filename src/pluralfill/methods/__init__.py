"""Inpainters: one module per method ties its models and sampler to images (`Inpainter.inpaint`).
`base` is the protocol, `fixed_resolution` the shared path of the learned methods; `pluralfill.registry`
finds them by name or checkpoint."""
