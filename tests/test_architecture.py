"""The shape of the package: imports point down the layers, every method is declared once and every entry
point reads the declarations, and each training stage takes only its own settings."""

import ast
from pathlib import Path

import pytest
import yaml

import pluralfill
from pluralfill.errors import PluralfillError
from pluralfill.registry import describe, load_config, methods, named_configs, stages

SRC = Path(pluralfill.__file__).parent
CONFIGS = Path(__file__).resolve().parents[1] / "src" / "pluralfill" / "configs"

# Low to high. A module may import its own unit and the units of lower layers; never a unit of its own
# layer or of a higher one.
LAYERS = [
    {"errors"},
    {"devices"},
    {"io", "pixels", "hub", "geometry", "shards", "precision", "progress"},
    {"grid", "trace"},
    {"nn"},
    {"masks", "models", "losses"},
    {"sampling", "data", "metrics"},
    {"methods", "export"},
    {"train", "pretrained", "bench"},
    {"registry"},
    {"runner", "store"},
    {"app"},
    {"cli"},
    {"__main__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pluralfill" and len(parts) > 1 else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every pluralfill module `path` imports, at the top or inside a function: (line, module)."""
    module, is_package = _module_name(path), path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(package + ([base] if base else []))
            found.append((node.lineno, base))
            if base == "pluralfill":  # `from pluralfill import io`: the units themselves
                found += [(node.lineno, f"pluralfill.{a.name}") for a in node.names]
    return [(line, m) for line, m in found if m.startswith("pluralfill")]


def test_imports_point_down():
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        unit = _unit(_module_name(path))
        if unit is None:
            continue  # the package root re-exports lazily from the top
        assert unit in RANK, f"{path}: unit {unit!r} is in no layer of this test"
        for line, target in _imports(path):
            other = _unit(target)
            if other is None or other == unit or other not in RANK:  # `pluralfill` itself, or data folders
                continue
            if RANK[other] >= RANK[unit]:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({unit}) imports {target} ({other})")
    assert not wrong, "imports that point up or across:\n" + "\n".join(wrong)


def test_the_import_check_sees_lazy_and_relative_imports(tmp_path):
    """The check above could fail: it finds an upward import inside a function."""
    bad = SRC / "models" / "_probe_for_test.py"
    bad.write_text("def f():\n    from pluralfill.methods.base import Inpainter\n    from ..train import loop\n")
    try:
        assert [m for _, m in _imports(bad)] == ["pluralfill.methods.base", "pluralfill.train"]
        with pytest.raises(AssertionError, match="imports pluralfill.methods.base"):
            test_imports_point_down()
    finally:
        bad.unlink()


def test_every_method_is_declared_once_and_complete():
    specs = methods()
    assert {"put", "maskgit", "mhtma", "dsi", "patchmatch", "telea", "navier-stokes"} <= set(specs)
    for spec in specs.values():
        if spec.model is None:
            continue
        assert spec.configs, spec.name
        for name in spec.configs:  # `info` builds every named config from the declaration
            assert describe(name)["method"] in spec.loads
    for name, (_spec, stage) in stages().items():  # each stage's config class names that stage
        assert stage.config.model_fields["stage"].annotation.__args__ == (name,)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates_against_its_stage(path):
    cfg = load_config(path, ["data.train=x"])
    assert cfg.stage == yaml.safe_load(path.read_text())["stage"] and type(cfg) is stages()[cfg.stage][1].config
    model = cfg.model if isinstance(cfg.model, str) else cfg.model["base"]
    assert model in named_configs()


def test_a_setting_of_another_stage_is_an_error_that_names_the_stage_and_what_it_takes():
    with pytest.raises(
        PluralfillError, match=r"loss.gan: the put-pvqvae stage has no such setting; loss takes: pixel, gradient"
    ):
        load_config(CONFIGS / "put-tiny-pvqvae.yaml", ["loss.gan=wgan-gp"])
    with pytest.raises(
        PluralfillError, match="the maskgit-transformer stage has no such setting; loss takes: mask_schedule"
    ):
        load_config(CONFIGS / "maskgit-tiny-transformer.yaml", ["loss.random_quantize=0.3"])
    with pytest.raises(
        PluralfillError, match="first_stage: the put-pvqvae stage has no such setting; the config takes: stage, model"
    ):
        load_config(CONFIGS / "put-tiny-pvqvae.yaml", ["first_stage=runs/x"])
    with pytest.raises(PluralfillError, match="optim.polyak_decay: the mhtma stage has no such setting"):
        load_config(CONFIGS / "mhtma-tiny.yaml", ["optim.polyak_decay=0.999"])
    with pytest.raises(PluralfillError, match="stage: 'put-foo'; the stages are .*put-pvqvae"):
        load_config(CONFIGS / "put-tiny-pvqvae.yaml", ["stage=put-foo"])
    assert load_config(CONFIGS / "dsi-tiny-hvqvae.yaml", ["optim.polyak_decay=0.999"]).optim.polyak_decay == 0.999


@pytest.mark.parametrize("stage", ["put-transformer", "maskgit-transformer", "dsi-structure"])
def test_a_first_stage_model_says_which_stage_comes_next(tmp_path, stage):
    spec, declared = stages()[stage]
    tiny = spec.configs[f"{spec.name}-tiny"]
    part = next(v for k, v in tiny if k in ("pvqvae", "tokenizer", "hvqvae"))
    declared.reads(part).save_pretrained(tmp_path / "first")
    with pytest.raises(PluralfillError, match=f"first-stage .* cannot inpaint on its own: train the {stage} stage"):
        pluralfill.load_inpainter(tmp_path / "first")


def test_convert_and_info_read_the_declarations(capsys):
    from pluralfill.cli import main
    from pluralfill.registry import converters

    with pytest.raises(SystemExit) as e:
        main(["convert"])
    printed = capsys.readouterr().out
    assert e.value.code == 0 and all(name in printed for name in converters())
    for args, message in [
        (["convert", "put-official", "a.pth"], "put-official takes CHECKPOINT OUTPUT, got 1 path(s)"),
        (
            ["convert", "no-such", "a", "b"],
            "unknown converter 'no-such'; converters: dsi-official, maskgit-official, put-official, "
            "put-tpami-conditional",
        ),
    ]:
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["info", "--json"])
    listed = {row["name"] for row in __import__("json").loads(capsys.readouterr().out)}
    assert set(named_configs()) <= listed and {"patchmatch", "telea"} <= listed
