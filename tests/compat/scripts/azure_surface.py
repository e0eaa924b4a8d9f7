"""Uses every offline part of the compatibility layer; one output row per input file."""

import importlib.util
import json
import os
import sys

import azureml.core
from azureml.core import Model, Run
from azureml.core import model as model_module
from azureml.core.model import Model as ModelFromModule
from azureml.core.run import Run as RunFromModule
from azureml_user.parallel_run import EntryScript


def init():
    global current_run, factor
    assert ModelFromModule is Model and RunFromModule is Run
    assert model_module.Model is Model and azureml.core.VERSION
    assert importlib.util.find_spec("azureml.mlflow") is None  # a probe, not an import
    with open(os.path.join(Model.get_model_path("scaler"), "factor.txt")) as f:
        factor = int(f.read())
    current_run = Run.get_context()
    entry = EntryScript(logging_level="DEBUG")
    assert entry is EntryScript()
    entry.logger.debug("init in %s", entry.agent_name)
    current_run.tag("worker", entry.agent_name)
    current_run.log_list("factors", [factor, factor])
    facts = {
        "run_id": current_run.id,
        "parent_id": current_run.parent.id,
        "experiment": current_run.experiment.name,
        "env_run_id": os.environ.get("AZUREML_RUN_ID"),
        "agent_name": entry.agent_name,
        "output_dir": entry.output_dir,
        "log_dir": entry.log_dir,
        "working_dir": entry.working_dir,
        "bi_output": entry.AZUREML_BI_OUTPUT_PATH,
        "azureml_core_file": sys.modules["azureml.core"].__file__,
    }
    print("FACTS " + json.dumps(facts))


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path) as f:
            value = int(f.read()) * factor
        current_run.log("value", value)
        current_run.log_row("per_file", file=os.path.basename(path), value=value)
        rows.append(f"{os.path.basename(path)} {value}")
    current_run.log_table("batch", {"n": [len(rows)]})
    current_run.upload_file(f"batch_{len(rows)}.txt", mini_batch[0])
    current_run.parent.log("batches", 1)
    return rows
