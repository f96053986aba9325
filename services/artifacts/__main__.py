"""Run the artifacts alone: python -m services.artifacts [--port 50054] [--metrics-port 9467] ..."""

from services.runner import main

if __name__ == "__main__":
    main(["artifacts"], default_port=50054, default_metrics_port=9467)
