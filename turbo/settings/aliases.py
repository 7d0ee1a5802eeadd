"""Older spellings that existing experiment files use, kept in one place.

Each entry maps a settings class name to {old key: new key}. A file that uses the old key
validates as if it used the new one; using both is an error.
"""

RENAMED_FIELDS: dict[str, dict[str, str]] = {
    "TrainerSettings": {
        "evaluation_strategy": "eval_strategy",
        "no_cuda": "use_cpu",
    },
}


def apply_renames(class_names: list[str], data: dict) -> dict:
    """Rename old keys for a class or any of its bases (a subclass inherits the old names)."""
    renames = {old: new for name in class_names for old, new in RENAMED_FIELDS.get(name, {}).items()}
    if not any(old in data for old in renames):
        return data
    data = dict(data)
    for old, new in renames.items():
        if old in data:
            if new in data:
                raise ValueError(f"'{old}' is the old name of '{new}'; set only '{new}'")
            data[new] = data.pop(old)
    return data


def infer_logging_type(data: object) -> object:
    """A wandb block without a type field (`project_name`, `run_name`, `entity`) is wandb."""
    if isinstance(data, dict) and "logging_type" not in data and "project_name" in data:
        return {**data, "logging_type": "wandb"}
    return data
