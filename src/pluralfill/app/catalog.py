"""What the web app offers: the methods that run here (the classical fills, the bundled and installed models,
the `--checkpoint` folders), the declared methods that would need weights (listed, disabled, with the
reason), each one's options as form fields and the precisions this server's device runs it in."""

from __future__ import annotations

from pathlib import Path

from pluralfill.errors import PluralfillError
from pluralfill.registry import DEMO_NOTE


def _unavailable(name: str, kind: str, reason: str, **extra) -> dict:
    """A method the page lists but cannot run here: disabled, with the reason."""
    return {
        "name": name,
        "kind": kind,
        "available": False,
        "reason": reason,
        "deterministic": False,
        "options": [],
        "precisions": [],
        "guides": [],
        "note": None,
        "uncertainty": None,
        "checkpoint": None,
        **extra,
    }


class Catalog:
    """Offered methods by display name -> the name or folder `load_inpainter` takes; loaded on first use."""

    def __init__(self, checkpoints=(), device: str = "cpu"):
        from pluralfill.registry import available_methods, catalogue, load_inpainter

        self.device, self.loaded = device, {}
        self.offered = {name: name for name in available_methods()}  # the default first
        kinds = {row["name"]: row["kind"] for row in catalogue()}  # classical, installed or bundled
        self.kinds = {name: kinds[name] for name in self.offered}
        for ckpt in checkpoints:
            inpainter = load_inpainter(ckpt, device=device)  # fail at start-up, not at the first request
            name = f"{inpainter.name} ({Path(ckpt).name})"
            self.offered[name], self.kinds[name], self.loaded[name] = str(ckpt), "checkpoint", inpainter

    def get(self, method: str, precision: str = "fp32"):
        """The inpainter of an offered method in `precision` (fp32, bf16 or int8)."""
        from pluralfill.registry import load_inpainter

        if method not in self.offered:
            missing = next((m["reason"] for m in self.missing() if m["name"] == method), None)
            raise PluralfillError(
                f"{method} needs trained weights: {missing}"
                if missing
                else f"unknown method {method!r}; this server offers: {', '.join(self.offered)}"
            )
        if method not in self.loaded:
            self.loaded[method] = load_inpainter(self.offered[method], device=self.device)
        base = self.loaded[method]
        if precision == "fp32":
            return base
        usable = [p["name"] for p in self.precisions(base) if p["available"]]
        if precision not in usable:
            raise PluralfillError(f"{method} runs in {', '.join(usable)} on this server, not {precision}")
        if (method, precision) not in self.loaded:
            self.loaded[(method, precision)] = base.at_precision(precision)
        return self.loaded[(method, precision)]

    def precisions(self, inpainter) -> list[dict]:
        """Every precision with whether it runs here and, if not, why; learned models add auto."""
        from pluralfill import precision as P

        if not hasattr(inpainter, "at_precision"):
            return [{"name": "fp32", "available": True, "reason": None}] + [
                {
                    "name": p,
                    "available": False,
                    "reason": "a classical fill runs in numpy: precision applies to learned models",
                }
                for p in P.PRECISIONS[1:]
            ]
        usable = P.usable(inpainter.model, self.device)
        out = []
        for p in P.PRECISIONS:
            reason = None
            if p not in usable:
                try:
                    P.check(p, self.device)
                    reason = (
                        f"{inpainter.name} has no Linear layers for int8 to quantize"
                        if p == "int8"
                        else f"bf16 is emulated on this {self.device} (slower than fp32): it needs a GPU or a CPU with "
                        f"bf16"
                    )
                except PluralfillError as e:
                    reason = str(e)
            out.append({"name": p, "available": reason is None, "reason": reason})
        return [*out, {"name": "auto", "available": True, "reason": None}]

    def describe(self) -> list[dict]:
        """The method list of /api/methods: what runs here, then what would with weights."""
        out, kinds_here = [], set()
        for name in self.offered:
            try:
                inp = self.get(name)
            except PluralfillError as e:  # one broken model is listed as broken; the list still answers
                out.append(_unavailable(name, "broken", str(e)))
                continue
            kinds_here.add(getattr(getattr(inp, "model", None), "method", None))
            out.append(
                {
                    "name": name,
                    "kind": self.kinds[name],
                    "available": True,
                    "reason": None,
                    "deterministic": inp.deterministic,
                    "options": inp.option_specs(),
                    "precisions": self.precisions(inp),
                    "guides": inp.guide_specs(),
                    "note": DEMO_NOTE if self.kinds[name] == "bundled" else None,
                    "uncertainty": inp.uncertainty,
                    "checkpoint": self.offered[name] if self.kinds[name] == "checkpoint" else None,
                }
            )
        return out + self.missing(kinds_here)

    def missing(self, kinds_here=None) -> list[dict]:
        """The declared learned methods with no model on offer here, and what would bring one."""
        from pluralfill.registry import methods

        if kinds_here is None:
            kinds_here = {getattr(getattr(i, "model", None), "method", None) for i in self.loaded.values()}
        out = []
        for name, spec in methods().items():
            if spec.model is not None and not kinds_here & set(spec.loads) and name not in self.offered:
                reason = (
                    f"no {name} model on this server: `pluralfill models add` official weights, "
                    f"or start it with `pluralfill serve --checkpoint RUN` after `pluralfill train`"
                )
                out.append(_unavailable(name, "needs weights", reason, summary=spec.summary))
        return out
