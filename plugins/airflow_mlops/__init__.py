"""airflow-mlops: the ML lifecycle as Airflow 3 operators and DAG factories.

Importing the package is cheap: nothing heavy is imported here, so DAG files that
use the factories parse fast.
"""

__version__ = "0.1.0"
