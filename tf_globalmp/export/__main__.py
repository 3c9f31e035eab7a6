"""Command line of `tf_globalmp.export_tflite` (the package's only flag reader).

    python -m tf_globalmp.export --model saved_models/run/model.keras \\
        --out model.tflite [--quantize dynamic] [--no-sparse] [--no-minify] \\
        [--compare_dense]

A quantization-aware model saved as h5 (``tf_globalmp.sparsity_preserving_qat``, e.g.
a CIFAR-10 run's ``model_qat.h5``) is exported with ``--quantize int8`` (full integer,
no representative data needed). Prints the report as a table, writes it as
``<out>.json``; exits 1 with one
``error:`` line on a bad path, a model that cannot be loaded or converted, or
outputs that do not match; a model that is not pruned is exported with a warning.
A mixed-precision model is exported as its float32 network.
"""

import sys

from absl import app
from absl import flags

from tf_globalmp import export
from tf_globalmp import qat
from tf_globalmp import runs

flags.DEFINE_string("model", None, "SavedModel directory, .keras or .h5 file (or a run "
                    "directory holding model.keras).", required=True)
flags.DEFINE_string("out", None, "Output .tflite file; the report goes to <out>.json.",
                    required=True)
flags.DEFINE_enum("quantize", None, ["float16", "dynamic", "int8"],
                  "Quantization (default: none, float32). int8: quantization-aware "
                  "models only (post-training int8 needs representative data: use "
                  "tf_globalmp.export_tflite from Python).")
flags.DEFINE_bool("sparse", True, "Sparse weight encoding (--no-sparse turns it off).")
flags.DEFINE_bool("minify", True, "Drop tensor names and duplicated quantization "
                  "parameters (--no-minify keeps the converter's file).")
flags.DEFINE_bool("verify", True, "Compare the file's outputs with the Keras model "
                  "(--no-verify skips it).")
flags.DEFINE_bool("compare_dense", False, "Also convert the dense float32 model for the "
                  "size comparison (a second conversion, as long as the first).")
FLAGS = flags.FLAGS
_BOOLEANS = ("sparse", "minify", "verify", "compare_dense")


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        with qat.qat_scope():
            model = runs.load_model(FLAGS.model)
        if FLAGS.quantize == "int8" and not qat.is_qat_model(model):
            print("error: --quantize int8 of a model that is not quantization-aware needs "
                  "representative data; use tf_globalmp.export_tflite(..., "
                  "representative_dataset=...) from Python", file=sys.stderr)
            return 2
        result = export.export_tflite(model, FLAGS.out, sparse=FLAGS.sparse,
                                      quantize=FLAGS.quantize, minify=FLAGS.minify,
                                      verify=FLAGS.verify,
                                      compare_dense=FLAGS.compare_dense)
    except (FileNotFoundError, ValueError, TypeError, export.ExportError) as e:
        print(f"error: {e}".splitlines()[0], file=sys.stderr)
        return 1
    print(result.to_table())
    print(f"report written to {FLAGS.out}.json")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def gnu_negations(argv):
    """absl spells a false boolean --nosparse; also accept --no-sparse."""
    return [f"--no{a[5:]}" if a.startswith("--no-") and a[5:] in _BOOLEANS else a
            for a in argv]


if __name__ == "__main__":
    app.run(main, argv=gnu_negations(sys.argv))
