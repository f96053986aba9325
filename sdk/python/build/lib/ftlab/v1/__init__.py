"""Generated from protos/ftlab/v1; do not edit."""
