"""An OpenAI-compatible REST gateway to FineTune Lab's services (fine-tuning, files, chat completions)."""
