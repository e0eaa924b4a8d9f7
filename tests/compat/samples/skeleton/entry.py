"""Azure's entry-script skeleton: init() / run() / shutdown() with the EntryScript logger."""

import os

from azureml_user.parallel_run import EntryScript


def init():
    entry_script = EntryScript()
    logger = entry_script.logger
    logger.info(
        "init() in %s, output in %s", entry_script.agent_name, entry_script.output_dir
    )
    os.makedirs(os.path.join(entry_script.output_dir, "per_batch"), exist_ok=True)


def run(mini_batch, mini_batch_context):
    entry_script = EntryScript()
    entry_script.logger.info("mini-batch %d: %d items", mini_batch_context.minibatch_index,
                             len(mini_batch))  # fmt: skip
    target = os.path.join(
        entry_script.output_dir,
        "per_batch",
        f"{mini_batch_context.minibatch_index}.txt",
    )
    with open(target, "w") as f:
        f.write("\n".join(os.path.basename(p) for p in mini_batch) + "\n")
    return ["True"] * len(mini_batch)  # summary_only still counts successes by length


def shutdown():
    EntryScript().logger.info("shutdown() in %s", EntryScript().agent_name)
