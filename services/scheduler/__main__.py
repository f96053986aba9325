"""Run the scheduler alone: python -m services.scheduler [--port 50051] [--metrics-port 9464] ..."""

from services.runner import main

if __name__ == "__main__":
    main(["scheduler"], default_port=50051, default_metrics_port=9464)
