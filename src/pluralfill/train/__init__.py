"""Training on Lightning Fabric: one process on a CPU, DDP/FSDP over many GPUs and nodes, same command."""

from pathlib import Path


def train(cfg, resume=None) -> Path:
    """Run the stage `cfg.stage` names; returns the run folder."""
    if cfg.stage == "mhtma":  # one stage: the coarse and refinement networks train end to end with the GAN
        from pluralfill.train.mhtma import train_mhtma

        return train_mhtma(cfg, resume)
    if cfg.stage.startswith("dsi-"):
        from pluralfill.train import dsi

        return {"dsi-hvqvae": dsi.train_hvqvae, "dsi-structure": dsi.train_structure, "dsi-texture": dsi.train_texture}[cfg.stage](cfg, resume)
    if cfg.stage.startswith("put-"):
        from pluralfill.train.put import train_pvqvae as first, train_transformer as second
    else:
        from pluralfill.train.maskgit import train_tokenizer as first, train_transformer as second
    return (first if cfg.stage.endswith(("pvqvae", "tokenizer")) else second)(cfg, resume)
