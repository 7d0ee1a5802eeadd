"""Write the example corpus: docstrings of the Python standard library, one passage per public module,
class, function and method (title: the qualified name; text: the docstring, cut to MAX_WORDS words).

    python examples/rag/make_corpus.py outputs/rag_example/passages.jsonl
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import warnings
from pathlib import Path

MODULES = [
    "abc", "argparse", "array", "base64", "bisect", "calendar", "collections", "collections.abc",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "filecmp",
    "fnmatch", "fractions",
    "functools", "glob", "gzip", "hashlib", "heapq", "hmac", "html", "http.client", "io", "ipaddress",
    "itertools", "json", "logging", "math", "mimetypes", "operator", "os", "os.path", "pathlib", "pickle",
    "pprint", "queue", "random", "re", "secrets", "shlex", "shutil", "socket", "sqlite3", "statistics",
    "string", "struct", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "time", "timeit",
    "typing", "unicodedata", "urllib.parse", "urllib.request", "uuid", "weakref", "zipfile", "zlib",
]  # fmt: skip
MAX_WORDS = 120


def passages_of(module_name: str):
    module = importlib.import_module(module_name)
    seen: set[int] = set()

    def entry(name: str, obj: object):
        doc = inspect.getdoc(obj)
        if not doc or id(obj) in seen:
            return None
        seen.add(id(obj))
        words = doc.split()
        return {"id": name, "title": name, "text": " ".join(words[:MAX_WORDS])}

    if (row := entry(module_name, module)) is not None:
        yield row
    public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in sorted(public):
        obj = getattr(module, name, None)
        if obj is None or inspect.ismodule(obj):
            continue
        if getattr(obj, "__module__", module_name) not in (module_name, f"_{module_name}", None) and not (
            inspect.isbuiltin(obj) or inspect.isclass(obj)
        ):
            continue
        if (row := entry(f"{module_name}.{name}", obj)) is not None:
            yield row
        if inspect.isclass(obj):
            for attribute, member in sorted(vars(obj).items()):
                if attribute.startswith("_") or not callable(member):
                    continue
                if (row := entry(f"{module_name}.{name}.{attribute}", member)) is not None:
                    yield row


def main(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    ids: set[str] = set()
    with warnings.catch_warnings(), target.open("w", encoding="utf-8") as handle:
        warnings.simplefilter("ignore")
        for module_name in MODULES:
            for row in passages_of(module_name):
                if row["id"] not in ids:
                    ids.add(row["id"])
                    handle.write(json.dumps(row) + "\n")
                    count += 1
    print(f"wrote {count} passages from {len(MODULES)} modules to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/rag_example/passages.jsonl"))
