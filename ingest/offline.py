"""Offline by default: switch off every hub download before transformers is imported.

docqa's default path must never touch the network. transformers and huggingface_hub read these
variables at import time, so the packages import this module first. A user who does want a hub
can set the variables to 0 before starting docqa; ``setdefault`` leaves their choice alone.
"""

from __future__ import annotations

import os

OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # Model-loading bars would mix with docqa's own progress bars and streamed answers.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}


def enable_offline() -> None:
    """Set the offline switches that are not already set."""
    for name, value in OFFLINE_SWITCHES.items():
        os.environ.setdefault(name, value)
