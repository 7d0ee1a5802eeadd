"""`python -m tests.held_turbo COMMAND ...`: turbo's CLI, except that a process which has just written
the checkpoint named by TURBO_HOLD_AFTER (say `checkpoint-2`) whole stops there and sleeps.

Killed-and-resumed tests kill -9 a run once a checkpoint is complete. A tiny model's next steps take
milliseconds, so a loaded machine could let the run write the next checkpoint before the test saw the
first one (CI once did). Held, the writing rank (rank 0) never returns from the save, the other ranks
wait for it at their next collective, and the test kills the run at exactly that checkpoint.
"""

import os
import time
from pathlib import Path

from transformers.trainer_callback import TrainerState

from turbo.cli import main

save_to_json = TrainerState.save_to_json


def save_and_hold(state: TrainerState, json_path: str) -> None:
    save_to_json(state, json_path)
    if Path(json_path).parent.name == os.environ["TURBO_HOLD_AFTER"]:
        while True:
            time.sleep(60)


if __name__ == "__main__":
    TrainerState.save_to_json = save_and_hold
    main()
