# One image for every Airflow role and for the MLflow server: the project installed
# with the same pinned constraints as `make install`.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/airflow-mlops/
COPY --chown=airflow:0 plugins /opt/airflow-mlops/plugins
# The production extra: Celery provider, celery/kombu/redis, psycopg2 and asyncpg (what `make install-production` adds).
# The egg-info setuptools leaves beside the package would be a second copy of its metadata on
# sys.path: Airflow would register the plugin twice (see plugins/airflow_mlops/devstack/install_check.py).
RUN pip install --no-cache-dir -c /opt/airflow-mlops/constraints.txt -e '/opt/airflow-mlops[production]' \
    && rm -rf /opt/airflow-mlops/plugins/airflow_mlops.egg-info
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include /opt/airflow/include
