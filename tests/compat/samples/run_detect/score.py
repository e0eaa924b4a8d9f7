"""A script that detects Azure through AZUREML_RUN_ID, as several samples do, and then
tags the step run; offline it would otherwise skip its metrics."""

import os


def init():
    global run_context
    run_context = None
    if "AZUREML_RUN_ID" in os.environ:
        from azureml.core.run import Run

        run_context = Run.get_context()
        run_context.tag("mode", "azure")


def run(mini_batch):
    if run_context is not None:
        run_context.log_row("batch", size=len(mini_batch))
    mode = "tracked" if run_context is not None else "untracked"
    return [f"{os.path.basename(p)} {mode}" for p in mini_batch]
