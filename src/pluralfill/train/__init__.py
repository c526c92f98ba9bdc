"""Training on Lightning Fabric: one process on a CPU, DDP/FSDP over many GPUs and nodes, same command.

One module per method holds its stages (each a config class with its own loss settings, and a function
that trains it); `loop` and `run` are what they share. `pluralfill.registry` says which stage is which.
"""
