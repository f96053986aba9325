"""Run the trainer alone: python -m services.trainer [--port 50052] [--metrics-port 9465] ..."""

from services.runner import main

if __name__ == "__main__":
    main(["trainer"], default_port=50052, default_metrics_port=9465)
