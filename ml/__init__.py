"""Importable ML code and training jobs (dual encoder, attribute extraction, title generation).

The platform stage ships no model yet; later stages add their modules here and register what they
train in MLflow (`pinlanding/tracking.py` configures the store).
"""
