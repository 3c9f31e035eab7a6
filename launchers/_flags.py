"""absl flags generated from a config dataclass, and the config built from them.

`define` makes one flag per named field: same name, type from the annotation (bool,
int, float, str; `X | None` as X; `tuple[int, ...]` as a comma list), help from the
field's metadata (`configs.common.field`), an enum flag where the field has choices.
With presets a flag's default is None, "not given": the preset's value, else the
config's default (named in the help); without presets, the config's default.
Only launchers read FLAGS; `parse` is where they do, called by `main`, the shape every
launcher shares (config from flags, then the task, then a summary).
"""

import dataclasses
import importlib
import sys
import typing

from absl import app
from absl import flags

from tf_globalmp.configs import common

_DEFINE = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, str: flags.DEFINE_string, tuple: flags.DEFINE_list}
_ITEM_TYPES = {}  # flag name -> item type of a tuple field (comma list -> tuple)


def _kind(annotation):
    """(flag type, item type of a tuple or None) of a field annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is tuple:
        return tuple, args[0] if args else None
    if args:  # X | None
        return _kind(args[0])
    return annotation, None


def define(config_class, names, presets=None, choices=None):
    """Defines a flag for each field of `config_class` in `names` (plus --preset, an
    enum of "custom" and `presets`, when given). `choices`: {name: allowed values} for
    fields whose values the config checks itself. Returns the names `parse` reads."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    if presets is not None:
        flags.DEFINE_enum("preset", "custom", ["custom", *presets],
                          common.metadata(config_class, "preset")["help"])
    for name in names:
        meta, default = common.metadata(config_class, name), fields[name].default
        text = meta["help"]
        if presets is not None:
            text += "" if default is None else f" Default: the preset's, else {default!r}."
            default = None
        allowed = (choices or {}).get(name, meta.get("choices"))
        if allowed is not None:
            flags.DEFINE_enum(name, default, list(allowed), text)
        else:
            kind, _ITEM_TYPES[name] = _kind(fields[name].type)
            _DEFINE[kind](name, list(default) if kind is tuple and default else default, text)
    return (["preset"] if presets is not None else []) + list(names)


def value(name):
    """The value of flag `name`; a tuple field's comma list as a tuple of its items."""
    raw, item = flags.FLAGS[name].value, _ITEM_TYPES.get(name)
    if raw is not None and item is not None:
        try:
            return tuple(item(v) for v in raw)
        except ValueError:
            sys.exit(f"--{name}: {name} must be comma-separated {item.__name__}s, got {raw}")
    return raw


def workdir(default, help="Run directory (resumable)."):
    """The --workdir flag (required when `default` is None)."""
    return flags.DEFINE_string("workdir", default, help, required=default is None)


def parse(argv, factory, names, **extra):
    """`factory(preset, **flag values, **extra)` (no preset if `names` has none): a
    ValueError from the config exits with one line naming its flag, before any work.
    `argv`: app.run's, the program name only."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = {n: value(n) for n in names if n != "preset"}
    preset = [flags.FLAGS.preset] if "preset" in names else []
    try:
        return factory(*preset, **values, **extra)
    except ValueError as e:
        sys.exit(f"--{str(e).split()[0]}: {e}")


def main(factory, names, workdir_flag, task, summary, extra=dict, before=None, **run_kwargs):
    """The `main` a launcher gives app.run: `config = parse(argv, factory, names,
    **extra())` (`extra` reads more flags), `before(config)` if given, then
    tf_globalmp.tasks.<task> (imports TensorFlow: only once the flags are valid)
    `.run(config, workdir, **run_kwargs)` and `summary(config, metrics, workdir)`."""
    def _main(argv):
        config = parse(argv, factory, names, **extra())
        if before is not None:
            before(config)
        module = importlib.import_module(f"tf_globalmp.tasks.{task}")
        summary(config, module.run(config, workdir_flag.value, **run_kwargs), workdir_flag.value)
    return _main
