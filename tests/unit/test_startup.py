"""Start-up: `python -m turbo --help` and `validate` import no torch, transformers, vllm or peft, and
validating one command's file builds the validators of that command's settings only (issue 24 item 5;
the times themselves are measured by benchmarks/startup.py, never asserted here)."""

import subprocess
import sys

from ..helpers import REPO

HEAVY = "('torch', 'transformers', 'vllm', 'peft', 'faiss')"


def test_help_and_validate_import_no_torch_and_build_one_commands_models() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from turbo.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "assert 'validate' in out.getvalue() and 'train_sft' in out.getvalue(), out.getvalue()\n"
        f"heavy = [m for m in {HEAVY} if m in sys.modules]\n"
        "assert not heavy, ('--help', heavy)\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['validate', 'tests/fixtures/configs/train/sft/lora.json', '--command', 'train_sft'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        f"heavy = [m for m in {HEAVY} if m in sys.modules]\n"
        "assert not heavy, ('validate', heavy)\n"
        "from turbo.settings.metrics import RougeMetricSettings\n"
        "from turbo.settings.pipelines.train.sft import SftExperimentSettings\n"
        "assert SftExperimentSettings.__pydantic_complete__\n"
        "assert not RougeMetricSettings.__pydantic_complete__  # not in the file: its validator is unbuilt\n"
        "assert 'turbo.modeling.rag.encoder' not in sys.modules  # the RAG preflight's imports\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
