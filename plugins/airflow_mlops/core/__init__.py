"""Airflow-free core of airflow-mlops: plain functions over URIs, DataFrames and MLflow.

Nothing here imports Airflow. Submodules import their heavy libraries at the top, so
this package's __init__ stays empty: the parse path may import ``spec`` and
``layout`` (light) without pulling in pandas or scikit-learn.
"""
