"""One runner per benchmark task: `tasks.<task>.run(config, workdir) -> metrics`.

quickstart (digits CNN), har2 (FastGRNN), cifar10, imagenet. Each validates its config,
returns a finished run dir's metrics as they are, or trains (resuming from
`workdir/train_state/`) and writes the run dir (`tf_globalmp.runs`). `common.py` and
`epoch_logs.py` hold what the runners share. Import the task module you need: this
package imports nothing itself.
"""
