"""The `pluralfill` command. It parses, calls the library and prints; the work lives elsewhere.

This module holds the app, the options several commands share and the entry point; the commands are in
`fill` (inpaint, demo, evaluate), `models` (convert, models, info, export) and `tools` (sketch, masks, train,
bench, serve)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pluralfill import DEFAULT_METHOD, __version__
from pluralfill.errors import PluralfillError

app = typer.Typer(
    help="Pluralistic image inpainting: several different, plausible fills of a hole.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # click's help: flags shown as flags, paragraphs rewrapped to the terminal
    context_settings={"help_option_names": ["-h", "--help"]},
)
masks_app = typer.Typer(
    help="Generate hole masks from presets and inspect mask folders.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(masks_app, name="masks")
models_app = typer.Typer(
    help="The model store: the bundled and installed models, and the official ones to add.",
    short_help="The model store: installed models and the official ones to add",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(models_app, name="models")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # one message, one line


# options several commands share, declared once
Output = Annotated[Path, typer.Option("-o", "--output", help="Output folder.")]
Method = Annotated[
    str | None,
    typer.Option(
        "--method",
        help=f"Method or installed model (`pluralfill info` lists them). [default: {DEFAULT_METHOD}]",
    ),
]
Checkpoint = Annotated[Path | None, typer.Option("--checkpoint", help="Checkpoint folder of a learned method.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed (any integer): the same seed gives the same samples.")]


def _device(value: str) -> str:
    """A device this PyTorch and machine have, else one line naming those they have."""
    from pluralfill import devices

    try:
        devices.check(value)
    except PluralfillError as e:
        raise typer.BadParameter(str(e)) from None
    return value


Device = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...", callback=_device)]
Options = Annotated[list[str] | None, typer.Option("--option", help="Method option key=value (repeatable).")]
Devices = Annotated[
    int | None,
    typer.Option(
        "--devices",
        min=1,
        help="Processes on this machine (one per GPU with --device cuda); the work is split between them. [default: 1, "
        "or torchrun's]",
    ),
]
NumNodes = Annotated[
    int | None,
    typer.Option(
        "--num-nodes",
        min=1,
        help="Machines taking part (start the same command on each, e.g. with torchrun). [default: 1, or torchrun's]",
    ),
]
MaxPixels = Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
InvertMask = Annotated[
    bool, typer.Option("--invert-mask", help="Masks are white where pixels are KNOWN (PUT's files).")
]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32 (exact), bf16, int8 (CPU), or auto: the fastest that holds its quality bound on the first image "
        "(docs/performance.md).",
    ),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _version(value: bool):
    if value:
        out.print(f"pluralfill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
):
    pass


def _say(line: str, console: Console = err) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _need_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PluralfillError("ONNX needs the onnx and onnxruntime packages: pip install 'pluralfill[onnx]'") from None


# ------------------------------------------------------------------------------------------------ entry


def _fail(message: str) -> None:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(2)


def _plain_help() -> None:
    """Help as users type it: `IMAGES...` for an argument and `N`, `X`, `PATH` or `TEXT` for a value, where
    typer's own help shows `{images}...`, `<list[Path]>` and `<int range>`."""
    import inspect
    import re

    from typer.core import TyperArgument, TyperOption

    def usage(self) -> str:
        name = self.display_name_raw.upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    def value(self, ctx) -> str | None:
        if self.metavar is not None or self.is_flag:
            return self.metavar
        shown = str(self.display_type(ctx) or "")
        kind = re.fullmatch(r"<(?:list\[)?(\w+)\]?(?: range)?>", shown.lower())
        names = {"int": "N", "float": "X", "path": "PATH", "str": "TEXT"}
        return names.get(kind.group(1), shown) if kind else shown

    for typer_app in (app, masks_app, models_app):
        for info in [*typer_app.registered_commands, typer_app.registered_callback]:
            doc = inspect.getdoc(info.callback) if info is not None and info.callback is not None else None
            if not doc:
                continue
            if "\nExamples" in doc and info.epilog is None:  # examples at the end of the help, after the options
                info.help, examples = doc.split("\nExamples", 1)
                info.epilog = "Examples" + examples
            if info.short_help is None:  # the first sentence, whole, in the list of commands
                first = " ".join(doc.split("\n\n")[0].split())
                info.short_help = re.split(r"(?<=[a-z0-9)])\. ", first)[0].rstrip(".")
    TyperArgument._usage_display_name = usage
    TyperArgument._rich_display_name = usage
    TyperArgument.display_type_rich = lambda self, ctx: None
    TyperOption.display_type_rich = value


def _kept(command: list[str]) -> str:
    """What an interrupted command leaves, and how to go on."""
    name = command[0] if command else ""
    if name == "inpaint":
        return "every file written is whole and kept; to go on, run the same command with --resume (and --seed)"
    if name == "train":
        return "the run keeps its last checkpoint; go on with pluralfill train --resume RUN_DIR"
    if name in ("evaluate", "export", "convert", "models", "masks", "demo", "sketch"):
        return "nothing half-written is left; run it again to finish"
    return "stopped"


def main(argv: list[str] | None = None) -> None:
    clicks = sys.modules[typer.BadParameter.__module__]  # click's exceptions, as the installed typer ships them
    help_only = getattr(clicks, "NoArgsIsHelpError", ())
    _plain_help()
    try:
        code = app(args=argv, prog_name="pluralfill", standalone_mode=False)
    except help_only as e:  # a bare command group: its help, as click prints it
        e.show()
        sys.exit(e.exit_code)
    except clicks.UsageError as e:  # a wrong flag or value: one line, with where to read more
        command = e.ctx.command_path if e.ctx is not None else "pluralfill"
        _fail(f"{e.format_message()} (see `{command} -h`)")
    except clicks.ClickException as e:
        _fail(e.format_message())
    except (typer.Abort, KeyboardInterrupt):
        _say(f"interrupted: {_kept((argv if argv is not None else sys.argv[1:])[:1])}")
        sys.exit(130)
    except PluralfillError as e:
        _fail(str(e))
    except OSError as e:  # disk full, permission denied on an output folder, ...
        _fail(f"{e.strerror}: {e.filename}" if e.filename else str(e))
    if code == 130:  # typer's answer to Ctrl+C
        _say(f"interrupted: {_kept((argv if argv is not None else sys.argv[1:])[:1])}")
    sys.exit(code if isinstance(code, int) else 0)


from pluralfill.cli import fill, models, tools  # noqa: E402,F401  (registers the commands)
