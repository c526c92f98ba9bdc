"""Training on Lightning Fabric: one process on a CPU, DDP/FSDP over many GPUs and nodes, same command."""
