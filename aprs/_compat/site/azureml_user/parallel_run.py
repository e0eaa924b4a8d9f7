"""aprs's stand-in for ``azureml_user.parallel_run``: the ``EntryScript`` helper."""

from aprs._entry_script import EntryScript

__all__ = ["EntryScript"]
