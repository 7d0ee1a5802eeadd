"""turbo: fine-tune, align and run language and vision-language models from one JSON file."""

__version__ = "0.1.0"
