"""Run the analyzer alone: python -m services.analyzer [--port 50053] [--metrics-port 9466] ..."""

from services.runner import main

if __name__ == "__main__":
    main(["analyzer"], default_port=50053, default_metrics_port=9466)
