"""Work split across processes: one command line on one CPU, one GPU, 8 GPUs or several nodes.

`start_shards(devices, num_nodes)` returns this process's `Shard`. With one device and no launcher around it,
that is the whole job in this process. Otherwise Lightning Fabric (the engine training uses) starts the
processes, or joins the ones `torchrun` started, and sets up the process group (gloo on CPU, NCCL on GPUs):

    pluralfill inpaint photos/ --mask-dir masks/ -o out --devices 8               # 8 GPUs of this machine
    torchrun --nnodes 2 --nproc-per-node 8 ... -m pluralfill inpaint ...   # devices and nodes from torchrun

Rank r takes items r, r + W, r + 2W, ... of the sorted work list, so the split never depends on timing, and
`gather` brings every rank's results back to all of them in item order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pluralfill.errors import PluralfillError

T = TypeVar("T")


@dataclass
class Shard:
    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0

    def take(self, items: list) -> list:
        return items[self.rank :: self.world]

    def gather(self, values: list) -> list:
        """Every rank's `values` (its slice of a list, in the order `take` gave it) -> the whole list, in the
        original order, on every rank."""
        if self.world == 1:
            return list(values)
        import torch.distributed as dist

        parts = [None] * self.world
        dist.all_gather_object(parts, list(values))
        whole = [None] * sum(len(p) for p in parts)
        try:
            for r, part in enumerate(parts):
                whole[r :: self.world] = part
        except ValueError:  # a rank stopped early (an error it reports): its values, in rank order
            return [v for part in parts for v in part]
        return whole

    def broadcast(self, value):
        """Rank 0's value on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, decide: Callable[[], T]) -> T:
        """Rank 0's answer to `decide`, or its one-line error, on every rank.

        For verdicts about files that exist before the run (may I write here? what is done already?): rank 0
        decides before it writes anything, and no other rank gets past this call before rank 0 has decided,
        so however unevenly the ranks start, no rank judges a file another rank has just written."""
        if self.world == 1:
            return decide()
        try:
            verdict = (True, decide()) if self.main else None
        except PluralfillError as e:
            verdict = (False, str(e))
        ok, value = self.broadcast(verdict)
        if not ok:
            raise PluralfillError(value)
        return value

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def launcher_world() -> tuple[int, int] | None:
    """(processes per node, nodes) that torchrun (or another launcher setting its variables) started, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return local, max(1, world // max(local, 1))


def resolve_world(devices: int | None, num_nodes: int | None) -> tuple[int, int]:
    """--devices / --num-nodes, or what the launcher started when they are not given; one line if they
    contradict it."""
    launched = launcher_world()
    if launched is None:
        return devices or 1, num_nodes or 1
    local, nodes = launched
    for flag, given, actual in (("--devices", devices, local), ("--num-nodes", num_nodes, nodes)):
        if given is not None and given != actual:
            raise PluralfillError(
                f"{flag} {given} but the launcher started {actual} (WORLD_SIZE={os.environ['WORLD_SIZE']}, "
                f"LOCAL_WORLD_SIZE={os.environ.get('LOCAL_WORLD_SIZE', '?')}): drop {flag} under torchrun"
            )
    return local, nodes


def start_shards(devices: int | None = None, num_nodes: int | None = None, device: str = "cpu") -> Shard:
    """This process's shard. `device`: cpu, cuda, cuda:N or mps; with several processes each takes its own
    GPU (cuda) or shares the CPU. Under torchrun, devices and nodes default to what it started."""
    from pluralfill import devices as machine

    if (num_nodes or 1) > 1 and launcher_world() is None:  # the other machines would be waited for forever
        raise PluralfillError(
            f"--num-nodes {num_nodes} needs a launcher on every machine: start the same command "
            "under torchrun (--nnodes, --node-rank, --master-addr) on each"
        )
    devices, num_nodes = resolve_world(devices, num_nodes)
    machine.check(device, devices if str(device).startswith("cuda") else 1)  # one line for a GPU that is not there
    if devices == 1 and num_nodes == 1 and launcher_world() is None:
        return Shard(device=device)
    from lightning.fabric import Fabric

    accelerator = "cpu" if device == "cpu" else "cuda" if device.startswith("cuda") else device
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp")
    fabric.launch()
    return Shard(fabric.global_rank, fabric.world_size, str(fabric.device))
